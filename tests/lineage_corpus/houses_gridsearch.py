# expect model=search features=OverallQual,GrLivArea,GarageCars,YearBuilt label=SalePrice sources=data/houses.csv
# expect model=best features=OverallQual,GrLivArea,GarageCars,YearBuilt label=SalePrice sources=data/houses.csv
import pandas as pd
from sklearn.ensemble import RandomForestRegressor
from sklearn.model_selection import GridSearchCV, train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

df = pd.read_csv("data/houses.csv")
X = df[["OverallQual", "GrLivArea", "GarageCars", "YearBuilt"]]
y = df["SalePrice"]
X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=0.25, random_state=0)
pipe = Pipeline([("scale", StandardScaler()), ("rf", RandomForestRegressor(random_state=0))])
search = GridSearchCV(pipe, {"rf__n_estimators": [5, 10]}, cv=3)
search.fit(X_tr, y_tr)
best = search.best_estimator_
