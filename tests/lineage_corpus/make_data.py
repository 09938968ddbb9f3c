"""Write the small synthetic data sets the lineage corpus scripts read (fixed seed; run once, files committed).

    python tests/lineage_corpus/make_data.py
"""

from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent / "data"
N = 240


def main() -> None:
    rng = np.random.default_rng(7)
    HERE.mkdir(exist_ok=True)
    age = rng.normal(30, 12, N).round(0)
    age[rng.random(N) < 0.15] = np.nan
    pd.DataFrame({
        "PassengerId": np.arange(1, N + 1), "Survived": rng.integers(0, 2, N), "Pclass": rng.integers(1, 4, N),
        "Name": [f"Person {i}, Mr. X" for i in range(N)], "Sex": rng.choice(["male", "female"], N), "Age": age,
        "SibSp": rng.integers(0, 4, N), "Parch": rng.integers(0, 3, N), "Ticket": [f"T{i}" for i in range(N)],
        "Fare": rng.gamma(2, 15, N).round(2), "Cabin": rng.choice(["C85", "", "E46"], N),
        "Embarked": rng.choice(["S", "C", "Q"], N),
    }).to_csv(HERE / "titanic.csv", index=False)
    pd.DataFrame({
        "Id": np.arange(1, N + 1), "MSSubClass": rng.choice([20, 60, 70], N), "LotArea": rng.integers(5000, 20000, N),
        "OverallQual": rng.integers(1, 11, N), "OverallCond": rng.integers(1, 10, N),
        "YearBuilt": rng.integers(1900, 2010, N), "GrLivArea": rng.integers(600, 4000, N),
        "FullBath": rng.integers(1, 4, N), "BedroomAbvGr": rng.integers(1, 6, N), "GarageCars": rng.integers(0, 4, N),
        "Neighborhood": rng.choice(["NAmes", "CollgCr", "OldTown"], N),
        "SaleCondition": rng.choice(["Normal", "Abnorml", "Partial"], N),
        "SalePrice": rng.integers(50_000, 500_000, N),
    }).to_csv(HERE / "houses.csv", index=False)
    ids = [f"C{i:04d}" for i in range(N)]
    pd.DataFrame({
        "customerID": ids, "gender": rng.choice(["Male", "Female"], N), "SeniorCitizen": rng.integers(0, 2, N),
        "Partner": rng.choice(["Yes", "No"], N), "tenure": rng.integers(0, 72, N),
        "PhoneService": rng.choice(["Yes", "No"], N),
        "Contract": rng.choice(["Month-to-month", "One year", "Two year"], N),
        "PaymentMethod": rng.choice(["Electronic check", "Mailed check", "Credit card"], N),
        "MonthlyCharges": rng.uniform(20, 120, N).round(2), "TotalCharges": rng.uniform(20, 8000, N).round(2),
        "Churn": rng.choice(["Yes", "No"], N),
    }).to_csv(HERE / "churn.csv", index=False)
    pd.DataFrame({
        "customerID": ids, "calls": rng.integers(0, 300, N), "data_gb": rng.gamma(2, 3, N).round(2),
        "support_tickets": rng.integers(0, 6, N),
    }).to_csv(HERE / "usage.csv", index=False)
    pd.DataFrame({
        "ID": np.arange(1, N + 1), "LIMIT_BAL": rng.integers(10_000, 500_000, N), "SEX": rng.integers(1, 3, N),
        "EDUCATION": rng.integers(1, 5, N), "MARRIAGE": rng.integers(1, 4, N), "AGE": rng.integers(21, 70, N),
        "PAY_0": rng.integers(-2, 5, N), "PAY_2": rng.integers(-2, 5, N),
        "BILL_AMT1": rng.integers(0, 100_000, N), "BILL_AMT2": rng.integers(0, 100_000, N),
        "PAY_AMT1": rng.integers(0, 20_000, N), "PAY_AMT2": rng.integers(0, 20_000, N),
        "default": rng.integers(0, 2, N),
    }).to_csv(HERE / "credit.csv", index=False)
    pd.DataFrame({
        "ID": np.arange(1, N + 1), "branch": rng.choice(["north", "south", "east"], N),
        "account_age": rng.integers(1, 30, N),
    }).to_csv(HERE / "accounts.csv", index=False)


if __name__ == "__main__":
    main()
