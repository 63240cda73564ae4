"""geoseek.capabilities.tiles.search and .basemap: "places like this one", arithmetic, interpolation
and the offline basemap, in Python, over the CLI and over HTTP."""

from __future__ import annotations

from geoseek.cli import main


def test_search_near_cli(built, capsys, last_json):
    capsys.readouterr()
    assert main(["search", str(built[1]), "--near", "24.945,60.17", "-k", "5", "--json"]) == 0
    res = last_json(capsys)
    hits = res["hits"]
    assert len(hits) == 5 and [h["rank"] for h in hits] == [1, 2, 3, 4, 5]
    scores = [h["score"] for h in hits]
    assert scores == sorted(scores, reverse=True)
    assert "17/74618/37939" not in {h["item"]["id"] for h in hits}  # the query tile itself is left out
    # a point with nothing mapped is a clear error, not a traceback
    assert main(["search", str(built[1]), "--near", "100,10", "--json"]) == 2
    assert "nothing is mapped" in capsys.readouterr().err


def test_arithmetic_and_interpolation(built):
    from geoseek.capabilities.tiles.search import arithmetic, interpolate, similar
    from geoseek.collection import Collection

    col = Collection.open(built[1])
    ids = [it.id for it in col.items()][:3]
    hits = arithmetic(col, ids[0], ids[1], ids[2], k=4)
    assert len(hits) == 4 and not {h.item.id for h in hits} & set(ids)
    walk = interpolate(col, ids[0], "24.945,60.17", steps=4, k=1)
    assert len(walk) == 4 and walk[0][0].item.id == ids[0]
    assert len(similar(col, 24.945, 60.17, k=3)) == 3


def test_http_routes(built):
    from fastapi.testclient import TestClient

    from geoseek.service.app import create_app

    with TestClient(create_app({"hel": built[1]})) as client:
        r = client.get("/collections/hel/similar", params={"lon": 24.945, "lat": 60.17, "k": 3})
        assert r.status_code == 200 and r.json()["count"] == 3
        ids = [h["id"] for h in r.json()["hits"]]
        r = client.get("/collections/hel/arithmetic", params={"a": ids[0], "b": ids[1], "c": "24.945,60.17", "k": 2})
        assert r.status_code == 200 and r.json()["count"] == 2
        r = client.get("/collections/hel/interpolate", params={"a": ids[0], "b": ids[1], "steps": 3})
        assert r.status_code == 200 and len(r.json()["path"]) == 3
        r = client.get("/tiles/16/37309/18969.png")
        assert r.status_code == 200 and r.headers["content-type"] == "image/png" and r.content[:4] == b"\x89PNG"
        assert client.get("/tiles/3/99/0.png").status_code == 422
        assert client.get("/collections/hel/arithmetic", params={"a": "1/2/3", "b": ids[0], "c": ids[1]}).status_code == 404
