from conftest import session_namespace


def test_commit_then_checkout_round_trip(ws):
    ns = session_namespace("x = [1, 2]\ny = x\n")
    ws.commit(ns, "one")
    ns["x"].append(3)
    ws.commit(ns, "two")
    result = ws.checkout("HEAD~1", ns)
    assert ns["x"] == [1, 2] and ns["y"] is ns["x"]
    assert result.loaded == ["x", "y"]
