# expect model=tree features=PAY_0,PAY_2,PAY_AMT1,PAY_AMT2,EDUCATION label=default sources=data/credit.csv
import pandas as pd
from sklearn.tree import DecisionTreeClassifier

df = pd.read_csv("data/credit.csv")
groups = {"history": ["PAY_0", "PAY_2"], "payments": ["PAY_AMT1", "PAY_AMT2"], "profile": ["EDUCATION"]}
selected = []
for name, cols in groups.items():
    selected += cols
tree = DecisionTreeClassifier(max_depth=3)
tree.fit(df[selected], df["default"])
