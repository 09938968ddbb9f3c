# expect model=clf features=LIMIT_BAL,AGE,BILL_AMT1,BILL_AMT2,PAY_AMT1,PAY_AMT2 label=default sources=data/credit.csv
import pandas as pd
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

df = pd.read_csv("data/credit.csv")
amounts = ["LIMIT_BAL", "AGE", "BILL_AMT1", "BILL_AMT2", "PAY_AMT1", "PAY_AMT2"]
scaler = StandardScaler()
scaled = scaler.fit_transform(df[amounts])
pca = PCA(n_components=3)
components = pca.fit_transform(scaled)
clf = LogisticRegression()
clf.fit(components, df["default"])
