# expect model=booster features=OverallQual,GrLivArea,YearBuilt,LotArea label=SalePrice sources=data/houses.csv
import numpy as np
import pandas as pd
import xgboost as xgb

df = pd.read_csv("data/houses.csv")
feats = ["OverallQual", "GrLivArea", "YearBuilt", "LotArea"]
dtrain = xgb.DMatrix(df[feats], label=np.log(df["SalePrice"]))
params = {"max_depth": 3, "eta": 0.1, "objective": "reg:squarederror"}
booster = xgb.train(params, dtrain, num_boost_round=20)
