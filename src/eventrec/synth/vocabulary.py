"""The words of the synthetic platform: cities and venues, categories and their scenes.

A *scene* is a sub-genre of a category (jazz in music, surfing in sports): its tag is the
only visible trace of it, and it decides which venues, start hours and titles fit.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Final

from eventrec.resources import city_centroids

# What a venue is, so that a scene happens only where it can (no surfing in a theatre).
STADIUM, THEATRE, HALL, GROUNDS, BEACH, CLUB, GALLERY = (
    "stadium",
    "theatre",
    "hall",
    "grounds",
    "beach",
    "club",
    "gallery",
)


@dataclass(frozen=True)
class Venue:
    name: str
    kind: str


@dataclass(frozen=True)
class City:
    name: str
    latitude: float
    longitude: float
    share: float  # share of users and events, roughly by population and tourism
    venues: tuple[Venue, ...]

    @property
    def venue_names(self) -> tuple[str, ...]:
        return tuple(venue.name for venue in self.venues)

    def has_kind(self, kinds: tuple[str, ...]) -> bool:
        return any(venue.kind in kinds for venue in self.venues)


_CITY_VENUES: Final = (
    (
        "Colombo",
        0.34,
        (
            Venue("Nelum Pokuna Theatre", THEATRE),
            Venue("BMICH", HALL),
            Venue("Viharamahadevi Open Air Theatre", GROUNDS),
            Venue("Lionel Wendt Theatre", THEATRE),
            Venue("Independence Square", GROUNDS),
            Venue("Sugathadasa Indoor Stadium", STADIUM),
            Venue("R. Premadasa Stadium", STADIUM),
            Venue("Trace Expert City", HALL),
            Venue("Barefoot Garden Cafe", CLUB),
            Venue("Saskia Fernando Gallery", GALLERY),
            Venue("Mount Lavinia Beach", BEACH),
        ),
    ),
    (
        "Kandy",
        0.12,
        (
            Venue("Kandy City Centre", HALL),
            Venue("Pallekele International Stadium", STADIUM),
            Venue("Kandy Lake Club", CLUB),
            Venue("Queen's Hotel Ballroom", HALL),
            Venue("Kandy Art Association Hall", GALLERY),
            Venue("Bogambara Grounds", GROUNDS),
            Venue("Kandy Cultural Centre Theatre", THEATRE),
        ),
    ),
    (
        "Galle",
        0.09,
        (
            Venue("Galle Fort Ramparts", GROUNDS),
            Venue("Galle International Stadium", STADIUM),
            Venue("Dutch Hospital Precinct", CLUB),
            Venue("Galle Literary Hall", HALL),
            Venue("Unawatuna Beach", BEACH),
            Venue("Fort Printers Gallery", GALLERY),
        ),
    ),
    (
        "Jaffna",
        0.08,
        (
            Venue("Jaffna Cultural Centre", THEATRE),
            Venue("Nallur Festival Grounds", GROUNDS),
            Venue("Jaffna Public Library Auditorium", HALL),
            Venue("Duraiappah Stadium", STADIUM),
            Venue("Casuarina Beach", BEACH),
        ),
    ),
    (
        "Negombo",
        0.09,
        (
            Venue("Negombo Beach Park", BEACH),
            Venue("Lagoon View Pavilion", HALL),
            Venue("Negombo Fish Market Square", GROUNDS),
            Venue("Browns Beach Lounge", CLUB),
        ),
    ),
    (
        "Ella",
        0.03,
        (
            Venue("Ella Rock Terrace", GROUNDS),
            Venue("Nine Arches Meadow", GROUNDS),
            Venue("Ella Gap Lodge", CLUB),
            Venue("Ella Community Hall", HALL),
        ),
    ),
    (
        "Trincomalee",
        0.05,
        (
            Venue("Marble Beach", BEACH),
            Venue("Fort Frederick Grounds", GROUNDS),
            Venue("Nilaveli Beach Club", CLUB),
            Venue("Trinco Town Hall", HALL),
        ),
    ),
    (
        "Matara",
        0.06,
        (
            Venue("Matara Town Hall", HALL),
            Venue("Polhena Beach", BEACH),
            Venue("Uyanwatte Stadium", STADIUM),
            Venue("Star Fort Grounds", GROUNDS),
        ),
    ),
    (
        "Anuradhapura",
        0.07,
        (
            Venue("Sacred City Hall", HALL),
            Venue("Nuwara Wewa Grounds", GROUNDS),
            Venue("Anuradhapura Walawwa", CLUB),
            Venue("Anuradhapura Public Stadium", STADIUM),
        ),
    ),
    (
        "Batticaloa",
        0.07,
        (
            Venue("Kallady Beach", BEACH),
            Venue("Batticaloa Fort Grounds", GROUNDS),
            Venue("Lagoon Arts Centre", GALLERY),
            Venue("Webber Stadium", STADIUM),
            Venue("Batticaloa Town Hall", HALL),
        ),
    ),
)


def _cities() -> tuple[City, ...]:
    centroids = city_centroids()
    cities = []
    for name, share, venues in _CITY_VENUES:
        point = centroids.centroid(name)
        if point is None:
            raise ValueError(f"city {name!r} has no centroid in resources/cities.json")
        cities.append(City(name, point[0], point[1], share, venues))
    return tuple(cities)


CITIES: Final = _cities()

# Words a title may carry about the time of day, and the local start hours they allow.
TIME_WORDS: Final = {
    "Sunrise": (5.0, 7.0),
    "Morning": (6.0, 11.5),
    "Brunch": (10.0, 12.5),
    "Lunch": (11.5, 14.0),
    "Afternoon": (12.0, 16.5),
    "Evening": (16.5, 20.5),
    "Dinner": (18.0, 21.5),
    "Night": (18.0, 23.5),
}
# The ones a template's {time_word} may become, by the event's start hour.
TITLE_TIME_WORDS: Final = ("Sunrise", "Morning", "Afternoon", "Evening", "Night")

# How a scene's performers are named (see `eventrec.synth.names`).
SINGER, BAND, DJ, COMEDIAN, TROUPE, TEAM, ATHLETE, CHEF, SPEAKER, ARTIST, INSTRUCTOR = (
    "singer",
    "band",
    "dj",
    "comedian",
    "troupe",
    "team",
    "athlete",
    "chef",
    "speaker",
    "artist",
    "instructor",
)


@dataclass(frozen=True)
class Scene:
    tag: str
    title: str  # as it reads in a title
    venue_kinds: tuple[str, ...]
    hours: tuple[float, ...]  # local start hours
    act: str  # how its performers are named
    works: tuple[str, ...]  # names of shows of this scene, free of cities and time words
    titles: tuple[str, ...] = ()  # overrides the category's one-off templates
    n_performers: tuple[int, int] = (1, 1)


@dataclass(frozen=True)
class Category:
    name: str
    scenes: tuple[Scene, ...]
    extra_tags: tuple[str, ...]  # tags that fit any scene of the category
    median_price: float  # LKR, of a paid ticket
    price_spread: float  # sigma of the log-normal price
    free_share: float  # share of events with free entry
    duration_hours: tuple[float, float]
    # Templates: {performer} {work} {scene} {city} {venue} {time_word}; series: {series} {edition}.
    # {series} {edition}.
    titles: tuple[str, ...]
    series_titles: tuple[str, ...] = field(
        default=("{series} {edition}", "{series} {edition}: {performer}")
    )

    @property
    def tags(self) -> tuple[str, ...]:
        """The category's tag vocabulary: its scenes' tags, then the general ones."""
        return tuple(dict.fromkeys([scene.tag for scene in self.scenes] + list(self.extra_tags)))


_TEAM_TITLES = (
    "{performer}",
    "{work}: {performer}",
    "{performer} at {venue}",
    "{city} {work}: {performer}",
)
_SOLO_SPORT_TITLES = ("{city} {work}", "{work} at {venue}", "{work} ft. {performer}")

CATEGORIES: Final = (
    Category(
        "music",
        (
            Scene(
                "baila",
                "Baila",
                (GROUNDS, HALL, BEACH, CLUB),
                (19.0, 20.0),
                BAND,
                ("Baila Blast", "Baila Fiesta"),
            ),
            Scene(
                "jazz",
                "Jazz",
                (CLUB, THEATRE, HALL),
                (19.0, 19.5, 20.0),
                BAND,
                ("Jazz Club", "Jazz Quartet Set"),
            ),
            Scene(
                "rock",
                "Rock",
                (GROUNDS, CLUB, HALL, STADIUM),
                (19.0, 20.0),
                BAND,
                ("Rock Fest", "Loud and Live"),
            ),
            Scene(
                "classical",
                "Classical",
                (THEATRE, HALL),
                (16.0, 18.5, 19.0),
                SINGER,
                ("Symphony Concert", "Chamber Recital"),
            ),
            Scene(
                "hip-hop",
                "Hip-Hop",
                (CLUB, GROUNDS),
                (20.0, 21.0),
                SINGER,
                ("Hip-Hop Cypher", "Rap Battle"),
            ),
            Scene(
                "edm",
                "EDM",
                (BEACH, CLUB, GROUNDS),
                (21.0, 22.0),
                DJ,
                ("Bass Drop", "Rave Republic"),
            ),
            Scene(
                "sinhala-pop",
                "Sinhala Pop",
                (STADIUM, GROUNDS, HALL),
                (18.5, 19.0),
                SINGER,
                ("Pop Gala", "Hits Live"),
            ),
            Scene(
                "carnatic",
                "Carnatic",
                (HALL, THEATRE),
                (17.0, 18.0),
                SINGER,
                ("Carnatic Recital", "Veena Concert"),
            ),
        ),
        ("live", "concert"),
        3500,
        0.7,
        0.05,
        (2, 5),
        (
            "{performer} Live in {city}",
            "{performer}: {scene} {time_word} at {venue}",
            "{performer} in Concert",
            "{work} with {performer}",
            "{performer}: {scene} {time_word}",
        ),
    ),
    Category(
        "theatre",
        (
            Scene(
                "sinhala-drama",
                "Sinhala Drama",
                (THEATRE, HALL),
                (15.0, 19.0),
                TROUPE,
                ("Maname", "Sinhabahu", "Kuveni", "Ehelepola Kumarihami", "Rathu Hatte"),
            ),
            Scene(
                "tamil-drama",
                "Tamil Drama",
                (THEATRE, HALL),
                (16.0, 18.5),
                TROUPE,
                ("Ponnaru Kathai", "Silappathikaram", "Manimekalai"),
            ),
            Scene(
                "english-theatre",
                "English Theatre",
                (THEATRE,),
                (19.0, 19.5),
                TROUPE,
                (
                    "Hamlet",
                    "Twelfth Night",
                    "Romeo and Juliet",
                    "The Caucasian Chalk Circle",
                    "Death of a Salesman",
                ),
            ),
            Scene(
                "musical",
                "Musical",
                (THEATRE,),
                (15.0, 19.0),
                TROUPE,
                ("The Sound of Music", "Annie", "Mamma Mia", "Les Miserables"),
            ),
            Scene(
                "kids",
                "Kids' Theatre",
                (THEATRE, HALL),
                (10.0, 15.0),
                TROUPE,
                ("The Jungle Book", "Pinocchio", "Alice in Wonderland"),
            ),
        ),
        ("stage", "play"),
        2500,
        0.5,
        0.03,
        (2, 3),
        ("{work}", "{work} by {performer}", "{work} at {venue}", "{work}: {time_word} Show"),
        ("{series} {edition}: {work}",),
    ),
    Category(
        "sports",
        (
            Scene(
                "cricket",
                "Cricket",
                (STADIUM,),
                (9.5, 14.0, 19.0),
                TEAM,
                ("T20 League", "Premier League Match", "Cup Final"),
                _TEAM_TITLES,
                (2, 2),
            ),
            Scene(
                "rugby",
                "Rugby",
                (STADIUM, GROUNDS),
                (15.5, 16.0),
                TEAM,
                ("Rugby League", "Clifford Cup", "Sevens"),
                _TEAM_TITLES,
                (2, 2),
            ),
            Scene(
                "football",
                "Football",
                (STADIUM, GROUNDS),
                (16.0, 19.0),
                TEAM,
                ("Champions League", "FA Cup", "Football Derby"),
                _TEAM_TITLES,
                (2, 2),
            ),
            Scene(
                "marathon",
                "Marathon",
                (GROUNDS,),
                (5.0, 5.5, 6.0),
                ATHLETE,
                ("Marathon", "Half Marathon", "Fun Run"),
                _SOLO_SPORT_TITLES,
            ),
            Scene(
                "beach-volleyball",
                "Beach Volleyball",
                (BEACH,),
                (9.0, 15.5),
                TEAM,
                ("Beach Volleyball Open", "Volleyball Cup"),
                _TEAM_TITLES,
                (2, 2),
            ),
            Scene(
                "surfing",
                "Surfing",
                (BEACH,),
                (7.0, 8.0),
                ATHLETE,
                ("Surf Cup", "Surf Pro Series"),
                _SOLO_SPORT_TITLES,
            ),
            Scene(
                "motorsport",
                "Motorsport",
                (GROUNDS,),
                (9.0, 10.0),
                ATHLETE,
                ("Supercross", "Hill Climb"),
                _SOLO_SPORT_TITLES,
            ),
        ),
        ("match", "live-sport"),
        2000,
        0.8,
        0.08,
        (3, 8),
        _SOLO_SPORT_TITLES,
        ("{series} {edition}: {performer}",),
    ),
    Category(
        "food",
        (
            Scene(
                "street-food",
                "Street Food",
                (GROUNDS, BEACH),
                (17.0, 18.0),
                CHEF,
                ("Kottu Fest", "Street Food Market"),
            ),
            Scene(
                "seafood",
                "Seafood",
                (BEACH, CLUB),
                (12.0, 19.0),
                CHEF,
                ("Seafood Carnival", "Crab Feast"),
            ),
            Scene(
                "vegan",
                "Vegan",
                (HALL, CLUB),
                (11.0, 12.0),
                CHEF,
                ("Vegan Food Fair", "Plant Kitchen"),
            ),
            Scene(
                "wine",
                "Wine",
                (CLUB, HALL),
                (19.0, 19.5),
                CHEF,
                ("Wine and Dine", "Wine Pairing Dinner"),
            ),
            Scene(
                "tea",
                "Tea",
                (HALL, GROUNDS),
                (15.0, 15.5),
                CHEF,
                ("Ceylon Tea Tasting", "High Tea"),
            ),
            Scene(
                "dessert",
                "Dessert",
                (CLUB, HALL),
                (14.0, 16.0),
                CHEF,
                ("Dessert Safari", "Sweet Street"),
            ),
        ),
        ("tasting", "foodie"),
        4000,
        0.6,
        0.10,
        (2, 6),
        ("{city} {work}", "{work} with {performer}", "{work} at {venue}"),
    ),
    Category(
        "tech",
        (
            Scene(
                "ai",
                "AI",
                (HALL,),
                (9.0, 10.0, 18.0),
                SPEAKER,
                ("AI Summit", "Machine Learning Meetup"),
                n_performers=(1, 3),
            ),
            Scene(
                "startups",
                "Startups",
                (HALL, CLUB),
                (9.0, 18.0),
                SPEAKER,
                ("Startup Weekend", "Founders Meetup", "Pitch Day"),
                n_performers=(1, 3),
            ),
            Scene(
                "cloud",
                "Cloud",
                (HALL,),
                (9.0, 18.0),
                SPEAKER,
                ("Cloud Native Meetup", "DevOps Day"),
                n_performers=(1, 3),
            ),
            Scene(
                "web",
                "Web",
                (HALL,),
                (9.0, 10.0),
                SPEAKER,
                ("DevFest", "Web Summit"),
                n_performers=(1, 3),
            ),
            Scene(
                "data",
                "Data",
                (HALL,),
                (9.0, 18.0),
                SPEAKER,
                ("Data Science Day", "Analytics Forum"),
                n_performers=(1, 3),
            ),
            Scene(
                "security",
                "Security",
                (HALL,),
                (9.0, 10.0),
                SPEAKER,
                ("CyberSec Conference", "Capture the Flag"),
                n_performers=(1, 3),
            ),
            Scene(
                "mobile",
                "Mobile",
                (HALL, CLUB),
                (9.0, 18.0),
                SPEAKER,
                ("Flutter Forward", "Mobile Dev Meetup"),
                n_performers=(1, 3),
            ),
        ),
        ("conference", "networking"),
        1500,
        0.9,
        0.35,
        (3, 9),
        ("{work} {city}", "{work} with {performer}", "{work} at {venue}"),
    ),
    Category(
        "festivals",
        (
            Scene(
                "vesak",
                "Vesak",
                (GROUNDS,),
                (18.0, 18.5),
                ARTIST,
                ("Vesak Lantern Walk", "Vesak Dansal Trail"),
            ),
            Scene(
                "perahera",
                "Perahera",
                (GROUNDS, STADIUM),
                (19.0,),
                ARTIST,
                ("Perahera Celebration", "Drummers' Procession"),
            ),
            Scene(
                "new-year",
                "New Year",
                (GROUNDS,),
                (9.0, 10.0),
                ARTIST,
                ("Avurudu Festival", "Avurudu Games"),
            ),
            Scene(
                "carnival",
                "Carnival",
                (BEACH, GROUNDS),
                (16.0, 17.0),
                ARTIST,
                ("Street Carnival", "Lantern Carnival"),
            ),
            Scene(
                "literature",
                "Literature",
                (HALL, GROUNDS),
                (10.0,),
                SPEAKER,
                ("Literary Festival", "Book Fair"),
                n_performers=(1, 3),
            ),
            Scene(
                "kites",
                "Kites",
                (BEACH, GROUNDS),
                (15.0,),
                ARTIST,
                ("Kite Festival", "Sky Colours"),
            ),
        ),
        ("cultural", "family"),
        3000,
        0.7,
        0.20,
        (5, 12),
        ("{city} {work}", "{work} at {venue}", "{work} with {performer}"),
    ),
    Category(
        "comedy",
        (
            Scene(
                "stand-up",
                "Stand-up",
                (CLUB, THEATRE),
                (19.5, 20.0),
                COMEDIAN,
                ("Comedy Showcase", "Punchline"),
            ),
            Scene(
                "improv", "Improv", (CLUB, THEATRE), (19.5,), COMEDIAN, ("Improv Jam", "Whose Line")
            ),
            Scene(
                "sinhala-comedy",
                "Sinhala Comedy",
                (THEATRE, HALL),
                (19.0,),
                COMEDIAN,
                ("Kolam Kolam", "Hinahawena Kathawa"),
            ),
            Scene(
                "english-comedy",
                "English Comedy",
                (CLUB, THEATRE),
                (20.0,),
                COMEDIAN,
                ("Laugh Out Loud", "Comedy Club"),
            ),
            Scene(
                "open-mic", "Open Mic", (CLUB,), (20.0, 20.5), COMEDIAN, ("Open Mic", "New Voices")
            ),
        ),
        ("comedy-show", "laughs"),
        2500,
        0.5,
        0.05,
        (1.5, 3),
        (
            "{performer} Live",
            "{performer}: {scene} {time_word}",
            "{performer} in {city}",
            "{work} with {performer}",
        ),
    ),
    Category(
        "art",
        (
            Scene(
                "painting",
                "Painting",
                (GALLERY, HALL),
                (10.0, 17.5),
                ARTIST,
                ("Contemporary Voices", "Colours of Lanka"),
            ),
            Scene(
                "photography",
                "Photography",
                (GALLERY, HALL),
                (10.0, 17.5),
                ARTIST,
                ("Lens of Lanka Photo Show", "Street Photo Exhibition"),
            ),
            Scene(
                "sculpture",
                "Sculpture",
                (GALLERY, GROUNDS),
                (10.0,),
                ARTIST,
                ("Sculpture Garden Open", "Stone and Bronze"),
            ),
            Scene(
                "crafts",
                "Crafts",
                (HALL, GROUNDS),
                (10.0, 11.0),
                ARTIST,
                ("Batik and Handloom Expo", "Craft Market"),
            ),
            Scene(
                "design",
                "Design",
                (HALL, GALLERY),
                (10.0, 17.5),
                ARTIST,
                ("Design Week", "Poster Show"),
            ),
            Scene(
                "heritage",
                "Heritage",
                (GROUNDS, HALL),
                (9.0, 16.0),
                ARTIST,
                ("Heritage Sketch Walk", "Old Town Trail"),
            ),
        ),
        ("exhibition", "opening"),
        1000,
        0.6,
        0.45,
        (3, 8),
        ("{work}", "{work} at {venue}", "{city} {work}", "{work}: {performer}"),
    ),
    Category(
        "workshops",
        (
            Scene(
                "cooking",
                "Cooking",
                (HALL, CLUB),
                (10.0, 15.0),
                INSTRUCTOR,
                ("Sri Lankan Cooking", "Curry Masterclass"),
            ),
            Scene(
                "yoga",
                "Yoga",
                (BEACH, GROUNDS, HALL),
                (6.0, 6.5, 17.0),
                INSTRUCTOR,
                ("Yoga Flow", "Yoga Retreat"),
            ),
            Scene(
                "coding",
                "Coding",
                (HALL,),
                (9.0, 10.0),
                INSTRUCTOR,
                ("Python Bootcamp", "Web Dev Crash Course"),
            ),
            Scene(
                "pottery",
                "Pottery",
                (HALL, GALLERY),
                (10.0, 14.0),
                INSTRUCTOR,
                ("Pottery Wheel", "Clay Studio"),
            ),
            Scene(
                "dance",
                "Dance",
                (HALL, THEATRE),
                (10.0, 16.0),
                INSTRUCTOR,
                ("Kandyan Dance", "Bharatanatyam Basics"),
            ),
            Scene(
                "writing",
                "Writing",
                (HALL, CLUB),
                (10.0, 18.0),
                INSTRUCTOR,
                ("Creative Writing", "Poetry Lab"),
            ),
            Scene(
                "batik",
                "Batik",
                (HALL, GALLERY),
                (10.0,),
                INSTRUCTOR,
                ("Batik Painting", "Batik Dyeing"),
            ),
        ),
        ("hands-on", "beginners"),
        5000,
        0.6,
        0.12,
        (2, 6),
        (
            "{work} Workshop",
            "{work} for Beginners",
            "{work} Masterclass in {city}",
            "{work} with {performer}",
            "{time_word} {work}",
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


def words_pattern(words: tuple[str, ...]) -> re.Pattern[str]:
    """Matches any of ``words`` as a whole word ("Kandy" but not "Kandyan")."""
    return re.compile(r"\b(" + "|".join(re.escape(word) for word in words) + r")\b")


CITY_PATTERN: Final = words_pattern(CITY_NAMES)
TIME_WORD_PATTERN: Final = words_pattern(tuple(TIME_WORDS))
