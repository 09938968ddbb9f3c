# expect model=ridge features=OverallQual,GrLivArea,FullBath,Neighborhood,SaleCondition label=SalePrice sources=data/houses.csv
import numpy as np
import pandas as pd
from sklearn.linear_model import Ridge

df = pd.read_csv("data/houses.csv")
subset = df[["OverallQual", "GrLivArea", "FullBath", "Neighborhood", "SaleCondition"]]
X = pd.get_dummies(subset)
y = np.log1p(df.SalePrice)
ridge = Ridge(alpha=1.0)
ridge.fit(X, y)
