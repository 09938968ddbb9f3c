# expect model=en features=MSSubClass,LotArea,OverallQual,OverallCond,YearBuilt,GrLivArea,FullBath,BedroomAbvGr,GarageCars label=SalePrice sources=data/houses.csv
import pandas as pd
from sklearn.linear_model import ElasticNet

df = pd.read_csv("data/houses.csv")
df.drop(["Id"], axis=1, inplace=True)
df.drop(columns=["Neighborhood", "SaleCondition"], inplace=True)
df.fillna(0, inplace=True)
y = df.pop("SalePrice")
en = ElasticNet(alpha=0.5)
en.fit(df, y)
