"""Nearest-place query and the place-file readers (no HTTP)."""

import json

import pytest

from backend.services import places
from backend.services.errors import ServiceError
from backend.tables.places import Place

CITY_HALL = (37.5663, 126.9779)  # Seoul City Hall


async def _seed(rows):
    await Place.insert(*[Place(name=n, kind=k, lat=la, lon=lo, address="", phone="", source="t")
                         for n, k, la, lo in rows])


def test_haversine_known_distance():
    # Seoul City Hall -> Busan City Hall is about 325 km great-circle.
    assert places.haversine_km(*CITY_HALL, 35.1798, 129.0750) == pytest.approx(325, abs=3)
    assert places.haversine_km(*CITY_HALL, *CITY_HALL) == 0


def test_bounding_box_contains_the_circle():
    lat, lon = CITY_HALL
    min_lat, max_lat, min_lon, max_lon = places.bounding_box(lat, lon, 5)
    assert places.haversine_km(lat, lon, max_lat, lon) == pytest.approx(5, rel=0.01)
    assert places.haversine_km(lat, lon, lat, max_lon) == pytest.approx(5, rel=0.01)
    assert min_lat < lat < max_lat and min_lon < lon < max_lon


async def test_nearest_orders_a_known_set_by_distance(client):
    lat, lon = CITY_HALL
    await _seed([
        ("far 30 km", "hospital", lat + 0.27, lon),
        ("near 0.5 km", "pharmacy", lat + 0.0045, lon),
        ("mid 3 km east", "clinic", lat, lon + 0.034),
        ("mid 2 km south", "hospital", lat - 0.018, lon),
        ("derm 8 km", "dermatology", lat - 0.072, lon),
        ("busan", "hospital", 35.1798, 129.0750),
    ])
    found = await places.nearest(lat, lon, limit=5)
    assert [p.name for p in found] == ["near 0.5 km", "mid 2 km south", "mid 3 km east",
                                       "derm 8 km", "far 30 km"]
    distances = [p.distance_km for p in found]
    assert distances == sorted(distances)
    assert distances[0] == pytest.approx(0.5, abs=0.02)
    # Busan is outside the 100 km search radius: a limit of 10 still returns only five.
    assert len(await places.nearest(lat, lon, limit=10)) == 5


async def test_nearest_specialty_filter_maps_checks(client):
    lat, lon = CITY_HALL
    await _seed([("skin doc", "dermatology", lat + 0.05, lon), ("ent doc", "ent", lat + 0.01, lon),
                 ("heart doc", "cardiology", lat + 0.02, lon), ("gp", "clinic", lat, lon)])
    assert [p.name for p in await places.nearest(lat, lon, kind="skin")] == ["skin doc"]
    assert [p.name for p in await places.nearest(lat, lon, kind="ear")] == ["ent doc"]
    assert [p.name for p in await places.nearest(lat, lon, kind="ecg")] == ["heart doc"]
    with pytest.raises(ServiceError):
        await places.nearest(lat, lon, kind="dentist")
    with pytest.raises(ServiceError):
        await places.nearest(91, lon)


def test_map_links():
    geo, osm = places.map_links("서울 약국", 37.5, 127.0)
    assert geo.startswith("geo:37.500000,127.000000?q=") and "%EC%84%9C" in geo
    assert osm == ("https://www.openstreetmap.org/?mlat=37.500000&mlon=127.000000"
                   "#map=17/37.500000/127.000000")


def test_korean_public_data_csv_in_cp949(tmp_path):
    path = tmp_path / "hira.csv"
    text = ("암호화요양기호,요양기관명,종별코드,종별코드명,주소,전화번호,좌표(X),좌표(Y)\n"
            "A1,서울대학교병원,01,상급종합병원,서울특별시 종로구 대학로 101,02-000-0001,126.9990,37.5796\n"
            "A2,맑은피부과의원,31,의원,서울 중구,02-000-0002,126.985,37.5637\n"
            "A3,좋은이비인후과의원,31,의원,서울 종로구,,126.99,37.57\n"
            "A4,튼튼치과의원,41,치과의원,서울,,126.99,37.57\n"
            "A5,온누리약국,81,약국,서울 중구,,126.977,37.565\n"
            "A6,좌표없는의원,31,의원,서울,,,\n"
            "A7,행복내과의원,31,의원,서울,,127.0,37.5\n")
    path.write_bytes(text.encode("cp949"))
    assert places.detect_encoding(path) == "cp949"
    fmt, rows = places.read_places(path)
    rows = list(rows)
    assert fmt == "korean-public-data-csv"
    kept = [(r.name, r.kind) for r in rows if r]
    assert kept == [("서울대학교병원", "hospital"), ("맑은피부과의원", "dermatology"),
                    ("좋은이비인후과의원", "ent"), ("온누리약국", "pharmacy"),
                    ("행복내과의원", "clinic")]
    assert rows.count(None) == 2  # the dental clinic and the row without coordinates
    first = next(r for r in rows if r)
    assert (first.lat, first.lon) == (37.5796, 126.9990)


def test_osm_geojson_and_csv(tmp_path):
    geojson = {"type": "FeatureCollection", "features": [
        {"type": "Feature", "geometry": {"type": "Point", "coordinates": [126.98, 37.56]},
         "properties": {"name": "City Pharmacy", "amenity": "pharmacy", "phone": "+82 2 000"}},
        {"type": "Feature", "geometry": {"type": "Polygon", "coordinates": [[
            [127.0, 37.5], [127.002, 37.5], [127.002, 37.502], [127.0, 37.502], [127.0, 37.5]]]},
         "properties": {"name": "Big Hospital", "amenity": "hospital", "addr:street": "Main"}},
        {"type": "Feature", "geometry": {"type": "Point", "coordinates": [127.1, 37.6]},
         "properties": {"name": "Ear Clinic", "amenity": "doctors",
                        "healthcare:speciality": "otolaryngology"}},
        {"type": "Feature", "geometry": {"type": "Point", "coordinates": [127.1, 37.6]},
         "properties": {"name": "A cafe", "amenity": "cafe"}},
    ]}
    path = tmp_path / "osm.geojson"
    path.write_text(json.dumps(geojson))
    fmt, rows = places.read_places(path)
    rows = list(rows)
    assert fmt == "osm-geojson"
    assert [(r.name, r.kind) for r in rows if r] == [
        ("City Pharmacy", "pharmacy"), ("Big Hospital", "hospital"), ("Ear Clinic", "ent")]
    big = rows[1]
    assert big.lat == pytest.approx(37.5008, abs=1e-3) and big.address == "Main"

    csv_path = tmp_path / "osm.csv"
    csv_path.write_text("@id,name,amenity,healthcare:speciality,@lat,@lon\n"
                        "n1,Skin Clinic,clinic,dermatology,37.5,127.0\n"
                        "n2,Gangnam Pharmacy,pharmacy,,37.49,127.02\n", encoding="utf-8-sig")
    fmt, rows = places.read_places(csv_path)
    assert fmt == "osm-csv"
    assert [(r.name, r.kind) for r in rows if r] == [("Skin Clinic", "dermatology"),
                                                     ("Gangnam Pharmacy", "pharmacy")]


def test_unknown_layout_is_a_readable_error(tmp_path):
    path = tmp_path / "x.csv"
    path.write_text("a,b\n1,2\n")
    with pytest.raises(ServiceError, match="Unknown CSV layout"):
        places.read_places(path)
