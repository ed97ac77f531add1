"""The shipped landmark metadata (src/landmarks.json) and the helpers in src/metadata.py."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from src.data.landmarks import (
    DEFAULT_PATH,
    LandmarkInfo,
    display_name,
    load_landmarks,
    lookup,
)

LANDMARK_CLASSES = [
    "00.Haleakala_National_Park", "01.Mount_Rainier_National_Park", "02.Ljubljana_Castle",
    "03.Dead_Sea", "04.Wroclaws_Dwarves", "05.London_Olympic_Stadium", "06.Niagara_Falls",
    "07.Stonehenge", "08.Grand_Canyon", "09.Golden_Gate_Bridge", "10.Edinburgh_Castle",
    "11.Mount_Rushmore_National_Memorial", "12.Kantanagar_Temple", "13.Yellowstone_National_Park",
    "14.Terminal_Tower", "15.Central_Park", "16.Eiffel_Tower", "17.Changdeokgung",
    "18.Delicate_Arch", "19.Vienna_City_Hall", "20.Matterhorn", "21.Taj_Mahal",
    "22.Moscow_Raceway", "23.Externsteine", "24.Soreq_Cave", "25.Banff_National_Park",
    "26.Pont_du_Gard", "27.Seattle_Japanese_Garden", "28.Sydney_Harbour_Bridge",
    "29.Petronas_Towers", "30.Brooklyn_Bridge", "31.Washington_Monument", "32.Hanging_Temple",
    "33.Sydney_Opera_House", "34.Great_Barrier_Reef", "35.Monumento_a_la_Revolucion",
    "36.Badlands_National_Park", "37.Atomium", "38.Forth_Bridge", "39.Gateway_of_India",
    "40.Stockholm_City_Hall", "41.Machu_Picchu", "42.Death_Valley_National_Park",
    "43.Gullfoss_Falls", "44.Trevi_Fountain", "45.Temple_of_Heaven", "46.Great_Wall_of_China",
    "47.Prague_Astronomical_Clock", "48.Whitby_Abbey", "49.Temple_of_Olympian_Zeus",
]

INDIAN_CLASSES = [
    "00.Ajanta_Caves", "01.Alai_Darwaza", "02.Alai_Minar", "03.Basilica_of_Bom_Jesus",
    "04.Brihadeeswarar_Temple", "05.Charar-e-Sharif", "06.Charminar", "07.Chhota_Imambara",
    "08.Ellora_Caves", "09.Fatehpur_Sikri", "10.Gateway_of_India", "11.Golden_Temple",
    "12.Hawa_Mahal", "13.Humayuns_Tomb", "14.India_Gate", "15.Iron_Pillar",
    "16.Jamali_Kamali_Tomb", "17.Khajuraho_Temples", "18.Lotus_Temple", "19.Mysore_Palace",
    "20.Qutub_Minar", "21.Sun_Temple_Konark", "22.Taj_Mahal", "23.Victoria_Memorial",
]

WORLD_CLASSES = [
    "00.Alhambra", "01.Angkor_Wat", "02.Chichen_Itza", "03.Cologne_Cathedral", "04.Colosseum", "05.Dome_of_the_Rock",
    "06.Eiffel_Tower", "07.Forbidden_City", "08.Great_Pyramid_of_Giza", "09.Great_Wall_of_China", "10.La_Defense",
    "11.Louvre", "12.Machu_Picchu", "13.Moulin_Rouge", "14.Palace_of_Versailles", "15.Petra",
]
# (lat min, lat max, lon min, lon max) of each world landmark's country, or of its city where no country is given
WORLD_BOXES = {
    "Spain": (36.0, 43.8, -9.3, 3.3), "Cambodia": (10.4, 14.7, 102.3, 107.6), "Mexico": (14.5, 32.7, -118.4, -86.7),
    "Germany": (47.3, 55.1, 5.9, 15.0), "Italy": (36.6, 47.1, 6.6, 18.5), "France": (42.3, 51.1, -4.8, 8.2),
    "China": (18.2, 53.6, 73.5, 134.8), "Egypt": (22.0, 31.7, 24.7, 36.9), "Peru": (-18.4, -0.0, -81.3, -68.7),
    "Jordan": (29.2, 33.4, 34.9, 39.3), "Jerusalem": (31.70, 31.85, 35.15, 35.30),
}
WORLD_TRAIN = Path(__file__).resolve().parents[1].parent / "shared" / "world_landmarks" / "train"

# ../shared/other_landmarks (never trained; taught in scripts/taught_check.py): its Sydney Opera House is the course's entry
OTHER_CLASSES = ["00.Big_Ben", "01.Clerigos_Tower", "02.Leaning_Tower_of_Pisa", "03.Mount_Fuji", "04.Ponte_da_Arrabida",
                 "05.Porto_City_Hall", "06.Saint_Basils_Cathedral"]

ALL_CLASSES = LANDMARK_CLASSES + INDIAN_CLASSES + WORLD_CLASSES + OTHER_CLASSES

INDIAN_TRAIN = Path(__file__).resolve().parents[1].parent / "shared" / "indian_monuments" / "train"
SAMPLES = Path(__file__).resolve().parents[1].parent / "shared" / "landmark_samples"


@pytest.fixture(scope="module")
def landmarks() -> dict[str, LandmarkInfo]:
    return load_landmarks()


def test_class_lists_are_complete() -> None:
    assert len(LANDMARK_CLASSES) == 50 and len(INDIAN_CLASSES) == 24
    assert [int(c.split(".")[0]) for c in LANDMARK_CLASSES] == list(range(50))
    assert [int(c.split(".")[0]) for c in INDIAN_CLASSES] == list(range(24))


def test_every_class_has_an_entry(landmarks) -> None:
    missing = [c for c in ALL_CLASSES if c not in landmarks]
    assert not missing
    assert set(landmarks) == set(ALL_CLASSES)


@pytest.mark.skipif(not INDIAN_TRAIN.is_dir(), reason="shared Indian monuments set not present")
def test_indian_folders_on_disk_have_entries(landmarks) -> None:
    folders = sorted(p.name for p in INDIAN_TRAIN.iterdir() if p.is_dir())
    assert folders == INDIAN_CLASSES
    assert all(f in landmarks for f in folders)


@pytest.mark.skipif(not SAMPLES.is_dir(), reason="shared landmark samples not present")
def test_sample_folders_on_disk_have_entries(landmarks) -> None:
    folders = {p.name for split in SAMPLES.iterdir() if split.is_dir() for p in split.iterdir()}
    assert folders and folders <= set(LANDMARK_CLASSES)


def test_json_is_well_formed() -> None:
    raw = json.loads(DEFAULT_PATH.read_text(encoding="utf-8"))
    for key, entry in raw.items():
        assert set(entry) - {"wikipedia"} == {"name", "city", "region", "country", "latitude", "longitude", "tags"}, key
        # a place whose country is disputed names its city instead (Dome of the Rock: Jerusalem)
        assert entry["name"].strip() and (entry["country"].strip() or key == "05.Dome_of_the_Rock"), key
        assert 3 <= len(entry["tags"]) <= 6, key
        for tag in entry["tags"]:
            assert tag and not tag.startswith("#") and tag.isalnum() and tag[0].isupper(), (key, tag)


@pytest.mark.parametrize("class_name", ALL_CLASSES)
def test_coordinates_are_valid(landmarks, class_name) -> None:
    info = landmarks[class_name]
    assert isinstance(info.latitude, float) and isinstance(info.longitude, float)
    assert -90 <= info.latitude <= 90
    assert -180 <= info.longitude <= 180
    assert (info.latitude, info.longitude) != (0.0, 0.0)


@pytest.mark.parametrize(
    "class_name, lat, lon, country",
    [
        ("16.Eiffel_Tower", 48.858, 2.294, "France"),
        ("21.Taj_Mahal", 27.175, 78.042, "India"),
        ("22.Taj_Mahal", 27.175, 78.042, "India"),
        ("09.Golden_Gate_Bridge", 37.82, -122.48, "United States"),
        ("33.Sydney_Opera_House", -33.857, 151.215, "Australia"),
        ("41.Machu_Picchu", -13.163, -72.545, "Peru"),
        ("37.Atomium", 50.895, 4.341, "Belgium"),
        ("07.Stonehenge", 51.179, -1.826, "United Kingdom"),
        ("24.Soreq_Cave", 31.757, 35.024, "Israel"),
        ("12.Kantanagar_Temple", 25.79, 88.67, "Bangladesh"),
        ("20.Qutub_Minar", 28.524, 77.185, "India"),
    ],
)
def test_spot_checks(landmarks, class_name, lat, lon, country) -> None:
    info = landmarks[class_name]
    assert info.latitude == pytest.approx(lat, abs=0.5)
    assert info.longitude == pytest.approx(lon, abs=0.5)
    assert info.country == country


@pytest.mark.parametrize("class_name", INDIAN_CLASSES)
def test_indian_set_is_in_india(landmarks, class_name) -> None:
    info = landmarks[class_name]
    assert info.country == "India"
    assert 6 <= info.latitude <= 37 and 68 <= info.longitude <= 98


@pytest.mark.parametrize("class_name", WORLD_CLASSES)
def test_world_set_lies_in_its_country_and_links_wikipedia(landmarks, class_name) -> None:
    info = landmarks[class_name]
    low_lat, high_lat, low_lon, high_lon = WORLD_BOXES[info.country or info.city]
    assert low_lat <= info.latitude <= high_lat and low_lon <= info.longitude <= high_lon
    assert info.wikipedia.startswith("https://en.wikipedia.org/wiki/") and info.to_dict()["wikipedia"] == info.wikipedia
    assert info.name and info.city and info.tags


@pytest.mark.skipif(not WORLD_TRAIN.is_dir(), reason="../shared/world_landmarks is not present (dev machines and CI only)")
def test_world_folders_on_disk_have_entries(landmarks) -> None:
    assert sorted(p.name for p in WORLD_TRAIN.iterdir() if p.is_dir()) == WORLD_CLASSES


def test_shared_class_agrees_between_sets(landmarks) -> None:
    for a, b in [("21.Taj_Mahal", "22.Taj_Mahal"), ("39.Gateway_of_India", "10.Gateway_of_India")]:
        assert (landmarks[a].latitude, landmarks[a].longitude) == (landmarks[b].latitude, landmarks[b].longitude)


def test_display_names_from_file(landmarks) -> None:
    assert landmarks["13.Humayuns_Tomb"].name == "Humayun's Tomb"
    assert landmarks["04.Wroclaws_Dwarves"].name == "Wrocław's Dwarves"
    assert landmarks["16.Eiffel_Tower"].name == "Eiffel Tower"


@pytest.mark.parametrize(
    "class_name, expected",
    [
        ("16.Eiffel_Tower", "Eiffel Tower"),
        ("00.Haleakala_National_Park", "Haleakala National Park"),
        ("05.Charar-e-Sharif", "Charar-e-Sharif"),
        ("Eiffel_Tower", "Eiffel Tower"),
        ("My_Place", "My Place"),
        ("7.Stonehenge", "Stonehenge"),
        ("Stonehenge", "Stonehenge"),
        ("", ""),
    ],
)
def test_display_name(class_name, expected) -> None:
    assert display_name(class_name) == expected


def test_location_skips_empty_parts(landmarks) -> None:
    assert landmarks["21.Taj_Mahal"].location == "Agra, Uttar Pradesh, India"
    assert landmarks["02.Ljubljana_Castle"].location == "Ljubljana, Slovenia"
    assert LandmarkInfo("x", "X", country="Peru").location == "Peru"
    assert LandmarkInfo("x", "X").location == ""


def test_lookup_known_class(landmarks) -> None:
    assert lookup("16.Eiffel_Tower") == landmarks["16.Eiffel_Tower"]


def test_lookup_matches_when_prefix_differs() -> None:
    info = lookup("99.Eiffel_Tower")
    assert info.class_name == "99.Eiffel_Tower"
    assert info.name == "Eiffel Tower" and info.country == "France"
    assert info.latitude == pytest.approx(48.858, abs=0.5)
    assert lookup("Eiffel_Tower").country == "France"
    assert lookup("3.Taj_Mahal").city == "Agra"


@pytest.mark.parametrize("class_name", ["42.My_Place", "My_Place", "", "???", "07.", "日本_庭園"])
def test_lookup_unknown_class_never_crashes(class_name) -> None:
    info = lookup(class_name)
    assert info.class_name == class_name
    assert info.name == display_name(class_name)
    assert info.latitude is None and info.longitude is None
    assert info.location == "" and info.map_url is None
    assert all(h.startswith("#") and " " not in h for h in info.hashtags)
    assert info.to_dict()["map_url"] is None
    json.dumps(info.to_dict())


def test_lookup_unknown_tags_from_name() -> None:
    info = lookup("42.My_Place")
    assert info.name == "My Place"
    assert list(info.tags) == ["MyPlace"]
    assert info.hashtags == ["#MyPlace"]


def test_lookup_with_custom_table(tmp_path) -> None:
    path = tmp_path / "custom.json"
    path.write_text(json.dumps({"00.Home": {"name": "Home", "country": "Nowhere", "tags": ["Home"]}}))
    table = load_landmarks(path)
    assert table["00.Home"].latitude is None
    assert lookup("01.Home", table).country == "Nowhere"
    assert lookup("16.Eiffel_Tower", table).country == ""


@pytest.mark.parametrize("class_name", ALL_CLASSES)
def test_hashtags(landmarks, class_name) -> None:
    tags = landmarks[class_name].hashtags
    assert tags
    for tag in tags:
        assert tag.startswith("#") and len(tag) > 1
        assert " " not in tag and "#" not in tag[1:]


def test_hashtag_examples(landmarks) -> None:
    assert landmarks["21.Taj_Mahal"].hashtags[:3] == ["#TajMahal", "#Agra", "#India"]
    assert LandmarkInfo("x", "X", tags=("#Already", "two words", "Already")).hashtags == ["#Already", "#TwoWords"]


@pytest.mark.parametrize("class_name", ["16.Eiffel_Tower", "33.Sydney_Opera_House", "09.Golden_Gate_Bridge"])
def test_map_url_contains_coordinates(landmarks, class_name) -> None:
    info = landmarks[class_name]
    url = info.map_url
    assert url.startswith("https://www.openstreetmap.org/")
    assert f"mlat={info.latitude}" in url and f"mlon={info.longitude}" in url


def test_to_dict_is_json_ready(landmarks) -> None:
    d = landmarks["21.Taj_Mahal"].to_dict()
    assert json.loads(json.dumps(d)) == d
    assert d["location"] == "Agra, Uttar Pradesh, India"
    assert d["map_url"] and d["hashtags"][0] == "#TajMahal"
    assert d["tags"] == list(landmarks["21.Taj_Mahal"].tags)


def test_default_table_is_cached_but_copies_are_independent() -> None:
    a = load_landmarks()
    a.pop("16.Eiffel_Tower")
    assert "16.Eiffel_Tower" in load_landmarks()
    assert lookup("16.Eiffel_Tower").country == "France"


def test_leaf_module_imports_nothing_from_src() -> None:
    source = (Path(__file__).resolve().parents[1] / "src" / "data" / "landmarks.py").read_text(encoding="utf-8")
    assert "from ." not in source and "from src" not in source and "import src" not in source


@pytest.mark.parametrize("latitude, longitude", [(0, 0), (0.0, -0.0), (None, 0), (12.5, None)])
def test_zero_zero_and_missing_coordinates_are_no_position(latitude, longitude) -> None:
    # 0, 0 is what a form or a store left at its default gives: the Gulf of Guinea, never a landmark's place
    info = LandmarkInfo("Big Ben", "Big Ben", latitude=latitude, longitude=longitude)
    assert not info.has_coordinates and info.map_url is None
    assert info.latitude is None and info.longitude is None
    assert info.to_dict()["latitude"] is None and info.to_dict()["longitude"] is None


def test_a_coordinate_of_zero_is_a_position_when_the_other_is_not() -> None:
    equator = LandmarkInfo("x", "On the equator", latitude=0.0, longitude=32.5)
    assert equator.has_coordinates and equator.map_url and equator.latitude == 0.0
