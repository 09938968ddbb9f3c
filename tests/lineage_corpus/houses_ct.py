# expect model=model features=LotArea,GrLivArea,YearBuilt,Neighborhood,SaleCondition label=SalePrice sources=data/houses.csv
import pandas as pd
from sklearn.compose import make_column_transformer
from sklearn.linear_model import Lasso
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

df = pd.read_csv("data/houses.csv")
num = ["LotArea", "GrLivArea", "YearBuilt"]
cat = ["Neighborhood", "SaleCondition"]
pre = make_column_transformer((StandardScaler(), num), (OneHotEncoder(handle_unknown="ignore"), cat))
model = make_pipeline(pre, Lasso(alpha=0.1, max_iter=5000))
X_train, X_valid, y_train, y_valid = train_test_split(df[num + cat], df["SalePrice"], random_state=1)
model.fit(X_train, y_train)
