"""Nearest places over HTTP: the JSON endpoint and the server-rendered page."""

from backend.tables.places import Place


async def _seed():
    await Place.insert(
        Place(name="Near Pharmacy", kind="pharmacy", lat=37.5670, lon=126.9780, phone="02-0000-0001"),
        Place(name="Far Hospital", kind="hospital", lat=37.60, lon=126.9780),
        Place(name="Skin <b>Clinic</b>", kind="dermatology", lat=37.58, lon=126.9780),
    )


async def test_nearest_json_sorted_with_map_links(client):
    await _seed()
    response = await client.get("/api/v1/places/nearest",
                                params={"lat": 37.5663, "lon": 126.9779, "limit": 5})
    assert response.status_code == 200
    body = response.json()
    names = [p["name"] for p in body["places"]]
    assert names == ["Near Pharmacy", "Skin <b>Clinic</b>", "Far Hospital"]
    first = body["places"][0]
    assert first["geo_uri"].startswith("geo:37.567000,126.978000")
    assert first["osm_url"].startswith("https://www.openstreetmap.org/?mlat=37.567000")
    assert first["distance_km"] < 0.1


async def test_nearest_json_kind_from_check_and_errors(client):
    await _seed()
    skin = await client.get("/api/v1/places/nearest",
                            params={"lat": 37.5663, "lon": 126.9779, "kind": "skin"})
    assert skin.json()["kind"] == "dermatology"
    assert [p["name"] for p in skin.json()["places"]] == ["Skin <b>Clinic</b>"]
    bad = await client.get("/api/v1/places/nearest", params={"lat": 95, "lon": 0})
    assert bad.status_code == 400 and "location" in bad.json()["error"]
    bad_kind = await client.get("/api/v1/places/nearest",
                                params={"lat": 37, "lon": 127, "kind": "spa"})
    assert bad_kind.status_code == 400


async def test_places_page_lists_nearest_and_escapes_names(client):
    await _seed()
    page = await client.get("/places", params={"lat": "37.5663", "lon": "126.9779"})
    assert page.status_code == 200
    assert page.text.index("Near Pharmacy") < page.text.index("Far Hospital")
    assert "Skin &lt;b&gt;Clinic&lt;/b&gt;" in page.text and "<b>Clinic" not in page.text
    assert 'href="geo:37.567000,126.978000' in page.text
    assert "/static/js/places.js" in page.text
    empty = await client.get("/places")
    assert empty.status_code == 200 and "Use my location" in empty.text
    ko = await client.get("/places", headers={"Accept-Language": "ko"})
    assert "내 위치" in ko.text
