# expect model=lr features=LotArea,OverallQual,OverallCond,YearBuilt,GrLivArea,FullBath,BedroomAbvGr,GarageCars label=SalePrice sources=data/houses.csv
import pandas as pd
from sklearn.linear_model import LinearRegression

df = pd.read_csv("data/houses.csv")
X = df.loc[:, "LotArea":"GarageCars"]
y = df.loc[:, "SalePrice"]
lr = LinearRegression().fit(X, y)
