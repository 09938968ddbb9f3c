# expect model=reg features=LotArea,OverallQual,YearBuilt,GrLivArea,GarageCars label=SalePrice sources=data/houses.csv
import numpy as np
import pandas as pd
from sklearn.linear_model import LinearRegression

houses = pd.read_csv("data/houses.csv")
cols = ["LotArea", "OverallQual", "YearBuilt", "GrLivArea", "GarageCars"]
X = houses[cols]
y = np.log1p(houses["SalePrice"])
reg = LinearRegression()
reg.fit(X, y)
