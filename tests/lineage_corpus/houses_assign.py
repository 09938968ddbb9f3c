# expect model=gbr features=MSSubClass,LotArea,OverallQual,OverallCond,YearBuilt,GrLivArea,FullBath,BedroomAbvGr,GarageCars label=SalePrice sources=data/houses.csv
import pandas as pd
from sklearn.ensemble import GradientBoostingRegressor

df = pd.read_csv("data/houses.csv")
df = df.assign(HouseAge=lambda d: 2010 - d.YearBuilt, Rooms=df.FullBath + df.BedroomAbvGr)
features = [c for c in df.columns if c not in ["Id", "SalePrice", "Neighborhood", "SaleCondition"]]
gbr = GradientBoostingRegressor(n_estimators=20)
gbr.fit(df[features], df["SalePrice"])
