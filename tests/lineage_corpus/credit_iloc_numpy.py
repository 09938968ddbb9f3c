# expect model=clf features=LIMIT_BAL,SEX,EDUCATION,MARRIAGE,AGE,PAY_0,PAY_2,BILL_AMT1,BILL_AMT2,PAY_AMT1,PAY_AMT2 label=default sources=data/credit.csv
import pandas as pd
from sklearn.ensemble import AdaBoostClassifier

df = pd.read_csv("data/credit.csv")
data = df.values
X = data[:, 1:-1]
y = data[:, -1]
clf = AdaBoostClassifier(n_estimators=20)
clf.fit(X, y)
