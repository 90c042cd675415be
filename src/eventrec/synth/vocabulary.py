"""The words of the synthetic platform: categories, tags, cities, venues, titles, prices."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final


@dataclass(frozen=True)
class City:
    name: str
    latitude: float
    longitude: float
    share: float  # share of users and events, roughly by population and tourism
    venues: tuple[str, ...]


CITIES: Final = (
    City(
        "Colombo",
        6.927,
        79.861,
        0.34,
        (
            "Nelum Pokuna Theatre",
            "BMICH",
            "Viharamahadevi Open Air Theatre",
            "Lionel Wendt Theatre",
            "Galle Face Green",
            "Sugathadasa Indoor Stadium",
            "Colombo Port City",
            "Trace Expert City",
            "Barefoot Garden Cafe",
            "R. Premadasa Stadium",
        ),
    ),
    City(
        "Kandy",
        7.291,
        80.634,
        0.12,
        (
            "Kandy City Centre",
            "Pallekele International Stadium",
            "Kandy Lake Club",
            "Queen's Hotel Ballroom",
            "Kandy Art Association Hall",
        ),
    ),
    City(
        "Galle",
        6.053,
        80.221,
        0.09,
        (
            "Galle Fort Ramparts",
            "Galle International Stadium",
            "Dutch Hospital Precinct",
            "Galle Literary Hall",
        ),
    ),
    City(
        "Jaffna",
        9.661,
        80.026,
        0.08,
        ("Jaffna Cultural Centre", "Nallur Festival Grounds", "Jaffna Public Library Auditorium"),
    ),
    City(
        "Negombo",
        7.209,
        79.835,
        0.09,
        ("Negombo Beach Park", "Lagoon View Pavilion", "Negombo Fish Market Square"),
    ),
    City(
        "Ella", 6.867, 81.046, 0.03, ("Ella Rock Terrace", "Nine Arches Meadow", "Ella Gap Lodge")
    ),
    City(
        "Trincomalee",
        8.587,
        81.215,
        0.05,
        ("Marble Beach Stage", "Trinco Fort Frederick Grounds", "Nilaveli Beach Club"),
    ),
    City(
        "Matara",
        5.949,
        80.535,
        0.06,
        ("Matara Town Hall", "Polhena Beach Stage", "Uyanwatte Grounds"),
    ),
    City(
        "Anuradhapura",
        8.311,
        80.404,
        0.07,
        ("Sacred City Hall", "Nuwara Wewa Grounds", "Anuradhapura Walawwa"),
    ),
    City(
        "Batticaloa",
        7.717,
        81.700,
        0.07,
        ("Kallady Beach Stage", "Batticaloa Fort Grounds", "Lagoon Arts Centre"),
    ),
)


@dataclass(frozen=True)
class Category:
    name: str
    tags: tuple[str, ...]
    median_price: float  # LKR, of a paid ticket
    price_spread: float  # sigma of the log-normal price
    free_share: float  # share of events with free entry
    duration_hours: tuple[float, float]
    titles: tuple[str, ...]  # templates: {name} {city} {venue} {tag} {edition}
    names: tuple[str, ...]


CATEGORIES: Final = (
    Category(
        "music",
        ("live", "baila", "jazz", "rock", "classical", "hip-hop", "edm", "acoustic", "sinhala-pop"),
        3500,
        0.7,
        0.05,
        (2, 5),
        (
            "{name} Live in {city}",
            "{name}: {tag} Night at {venue}",
            "An Evening with {name}",
            "{city} {tag} Sessions ft. {name}",
        ),
        (
            "Bathiya & Santhush",
            "Yohani",
            "Infinity",
            "Sunflowers",
            "Kasun Kalhara",
            "Iraj",
            "Centigradz",
            "Wayo",
            "Flashback",
            "Dhanith Sri",
            "The Soul",
            "Daddy",
            "Chitral Somapala",
            "Umaria",
        ),
    ),
    Category(
        "theatre",
        ("drama", "sinhala-drama", "tamil-drama", "english-theatre", "musical", "kids", "classic"),
        2500,
        0.5,
        0.03,
        (2, 3),
        ("{name}", "{name} ({tag})", "{name} at {venue}", "{name}: The {edition} Revival"),
        (
            "Maname",
            "Sinhabahu",
            "Kuveni",
            "Hamlet in Colombo",
            "Romeo and Juliet",
            "The Caucasian Chalk Circle",
            "Rathu Hatte",
            "Ehelepola Kumarihami",
            "Twelfth Night",
            "Ponnaru Kathai",
        ),
    ),
    Category(
        "sports",
        ("cricket", "rugby", "football", "marathon", "volleyball", "surfing", "motorsport"),
        2000,
        0.8,
        0.08,
        (3, 8),
        ("{name} {edition}", "{city} {name}", "{name} at {venue}"),
        (
            "Lanka Premier League Match",
            "Big Match: Royal vs S. Thomas'",
            "Dialog Rugby League",
            "Colombo Marathon",
            "Arugam Bay Surf Cup",
            "Foxhill Supercross",
            "Champions League Football",
            "Beach Volleyball Open",
        ),
    ),
    Category(
        "food",
        ("street-food", "seafood", "vegan", "wine", "tea", "buffet", "cooking", "dessert"),
        4000,
        0.6,
        0.10,
        (2, 6),
        ("{city} {name}", "{name} {edition}", "{name} at {venue}"),
        (
            "Kottu Fest",
            "Seafood Carnival",
            "Ceylon Tea Tasting",
            "Hoppers & Curry Night",
            "Street Food Market",
            "Wine & Dine Evening",
            "Vegan Food Fair",
            "Dessert Safari",
        ),
    ),
    Category(
        "tech",
        ("ai", "startups", "cloud", "web", "data", "security", "hackathon", "mobile"),
        1500,
        0.9,
        0.35,
        (3, 9),
        ("{name} {city} {edition}", "{name}: {tag} Edition", "{name} at {venue}"),
        (
            "DevFest",
            "Startup Weekend",
            "AI Summit",
            "Cloud Native Meetup",
            "Hack Lanka",
            "Data Science Day",
            "CyberSec Conference",
            "Flutter Forward",
        ),
    ),
    Category(
        "festivals",
        ("cultural", "vesak", "poson", "perahera", "new-year", "carnival", "lanterns", "family"),
        3000,
        0.7,
        0.20,
        (5, 12),
        ("{city} {name} {edition}", "{name} {edition}", "{name} at {venue}"),
        (
            "Avurudu Festival",
            "Vesak Lantern Walk",
            "Perahera Celebration",
            "Galle Literary Festival",
            "Colombo Night Carnival",
            "Kite Festival",
            "Harvest Festival",
            "Jaffna Music Festival",
        ),
    ),
    Category(
        "comedy",
        ("stand-up", "improv", "sinhala-comedy", "english-comedy", "open-mic"),
        2500,
        0.5,
        0.05,
        (1.5, 3),
        ("{name} Live", "{name}: {tag} Night", "{name} in {city}", "Laugh Out Loud with {name}"),
        (
            "Comedy Lanka",
            "Punchline Colombo",
            "The Funny Bones",
            "Improv Island",
            "Stand-up Saturdays",
            "Kolam Kolam",
        ),
    ),
    Category(
        "art",
        ("painting", "photography", "sculpture", "exhibition", "crafts", "design", "heritage"),
        1000,
        0.6,
        0.45,
        (3, 8),
        ("{name} {edition}", "{name} at {venue}", "{city} {name}"),
        (
            "Colombo Art Biennale",
            "Kala Pola",
            "Lens of Lanka Photo Show",
            "Batik & Handloom Expo",
            "Contemporary Voices",
            "Heritage Sketch Walk",
            "Sculpture Garden Open",
        ),
    ),
    Category(
        "workshops",
        ("cooking", "photography", "yoga", "coding", "pottery", "dance", "writing", "batik"),
        5000,
        0.6,
        0.12,
        (2, 6),
        ("{name} Workshop", "{name} for Beginners", "{name} Masterclass in {city}"),
        (
            "Batik Painting",
            "Sri Lankan Cooking",
            "Street Photography",
            "Sunrise Yoga",
            "Python Bootcamp",
            "Pottery Wheel",
            "Kandyan Dance",
            "Creative Writing",
        ),
    ),
)

CATEGORY_NAMES: Final = tuple(category.name for category in CATEGORIES)
CITY_NAMES: Final = tuple(city.name for city in CITIES)

AGE_BANDS: Final = ("13-17", "18-24", "25-34", "35-44", "45-54", "55-64", "65+")
AGE_SHARES: Final = (0.05, 0.24, 0.30, 0.19, 0.11, 0.07, 0.04)

# How much each age band leans to each category (rows: AGE_BANDS, columns: CATEGORIES).
AGE_CATEGORY_LEAN: Final = (
    (1.6, 0.6, 1.4, 0.8, 1.2, 1.2, 1.0, 0.7, 0.9),
    (1.8, 0.7, 1.2, 1.0, 1.3, 1.6, 1.3, 0.8, 0.8),
    (1.4, 0.9, 1.0, 1.3, 1.4, 1.2, 1.2, 0.9, 1.1),
    (1.0, 1.2, 1.0, 1.3, 1.0, 1.0, 1.0, 1.0, 1.2),
    (0.8, 1.5, 0.9, 1.3, 0.7, 0.9, 0.8, 1.3, 1.1),
    (0.7, 1.7, 0.8, 1.2, 0.5, 1.0, 0.7, 1.5, 1.0),
    (0.6, 1.8, 0.7, 1.1, 0.3, 1.0, 0.6, 1.6, 0.8),
)

EDITIONS: Final = ("2025", "2026", "Vol. 2", "Vol. 3", "Season 4", "Grand Finale", "Special")
