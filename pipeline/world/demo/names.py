"""Built-in name lists for the demo world (written for this project, no external files).

Common US first names per sex and common US surnames. Words that also occur in the
world's captions or class names (colours, hair words, shapes) are left out, so a name
can never be mistaken for a description and a description never contains a name.
"""
from __future__ import annotations

import numpy as np

FIRST_NAMES_MALE: list[str] = [
    "James", "John", "Robert", "Michael", "William", "David", "Richard", "Joseph", "Thomas",
    "Charles", "Christopher", "Daniel", "Matthew", "Anthony", "Donald", "Steven", "Paul",
    "Andrew", "Joshua", "Kenneth", "Kevin", "Brian", "George", "Timothy", "Ronald", "Edward",
    "Jason", "Jeffrey", "Ryan", "Jacob", "Gary", "Nicholas", "Eric", "Jonathan", "Stephen",
    "Larry", "Justin", "Scott", "Brandon", "Benjamin", "Samuel", "Gregory", "Alexander",
    "Frank", "Patrick", "Raymond", "Jack", "Dennis", "Jerry", "Tyler", "Aaron", "Jose", "Adam",
    "Nathan", "Henry", "Douglas", "Zachary", "Peter", "Kyle", "Ethan", "Walter", "Noah",
    "Jeremy", "Christian", "Keith", "Roger", "Terry", "Gerald", "Harold", "Sean", "Austin",
    "Carl", "Arthur", "Lawrence", "Dylan", "Jesse", "Jordan", "Bryan", "Billy", "Joe", "Bruce",
    "Gabriel", "Logan", "Albert", "Willie", "Alan", "Juan", "Wayne", "Elijah", "Randy", "Roy",
    "Vincent", "Ralph", "Eugene", "Russell", "Bobby", "Mason", "Philip", "Louis", "Harry",
    "Howard", "Lucas", "Oliver", "Liam", "Caleb", "Isaac", "Luke", "Owen", "Connor", "Evan",
    "Ian", "Colin", "Marcus", "Victor", "Martin", "Travis", "Shane", "Derek", "Trevor",
    "Dustin", "Cody", "Troy",
]

FIRST_NAMES_FEMALE: list[str] = [
    "Mary", "Patricia", "Jennifer", "Linda", "Elizabeth", "Barbara", "Susan", "Jessica",
    "Sarah", "Karen", "Lisa", "Nancy", "Betty", "Sandra", "Margaret", "Ashley", "Kimberly",
    "Emily", "Donna", "Michelle", "Carol", "Amanda", "Melissa", "Deborah", "Stephanie",
    "Dorothy", "Rebecca", "Sharon", "Laura", "Cynthia", "Amy", "Kathleen", "Angela", "Shirley",
    "Brenda", "Emma", "Anna", "Pamela", "Nicole", "Samantha", "Katherine", "Christine", "Helen",
    "Debra", "Rachel", "Carolyn", "Janet", "Maria", "Catherine", "Heather", "Diane", "Olivia",
    "Julie", "Joyce", "Victoria", "Christina", "Lauren", "Joan", "Evelyn", "Judith", "Megan",
    "Andrea", "Cheryl", "Hannah", "Jacqueline", "Martha", "Madison", "Teresa", "Gloria",
    "Janice", "Ann", "Kathryn", "Abigail", "Sophia", "Frances", "Jean", "Alice", "Judy",
    "Isabella", "Julia", "Grace", "Denise", "Doris", "Marilyn", "Danielle", "Beverly",
    "Charlotte", "Natalie", "Theresa", "Diana", "Brittany", "Kayla", "Alexis", "Lori", "Marie",
    "Chloe", "Ava", "Mia", "Ella", "Zoe", "Leah", "Claire", "Audrey", "Nora", "Lucy", "Stella",
    "Paige", "Allison", "Erin", "Tiffany", "Vanessa", "Holly", "Wendy", "Monica", "Tracy",
    "Erica",
]

# Colour and caption words (Brown, White, Black, Green, Gray, Rose, Long, Short, Young, ...)
# are deliberately absent.
LAST_NAMES: list[str] = [
    "Smith", "Johnson", "Williams", "Jones", "Miller", "Davis", "Garcia", "Rodriguez", "Wilson",
    "Martinez", "Anderson", "Taylor", "Thomas", "Hernandez", "Moore", "Martin", "Jackson",
    "Thompson", "Lee", "Perez", "Harris", "Clark", "Lewis", "Robinson", "Walker", "Hall",
    "Allen", "Wright", "Scott", "Torres", "Nguyen", "Hill", "Flores", "Adams", "Nelson",
    "Baker", "Campbell", "Mitchell", "Carter", "Roberts", "Gomez", "Phillips", "Evans",
    "Turner", "Diaz", "Parker", "Cruz", "Edwards", "Collins", "Reyes", "Stewart", "Morris",
    "Morales", "Murphy", "Cook", "Rogers", "Gutierrez", "Ortiz", "Morgan", "Cooper", "Peterson",
    "Bailey", "Reed", "Kelly", "Howard", "Ramos", "Kim", "Cox", "Ward", "Richardson", "Watson",
    "Brooks", "Chavez", "Wood", "Bennett", "Mendoza", "Ruiz", "Hughes", "Price", "Alvarez",
    "Castillo", "Sanders", "Patel", "Myers", "Ross", "Foster", "Jimenez", "Powell", "Jenkins",
    "Perry", "Sullivan", "Bell", "Coleman", "Butler", "Henderson", "Barnes", "Gonzales",
    "Fisher", "Vasquez", "Simmons", "Romero", "Patterson", "Hamilton", "Graham", "Reynolds",
    "Griffin", "Wallace", "Moreno", "West", "Cole", "Hayes", "Bryant", "Herrera", "Gibson",
    "Ellis", "Tran", "Medina", "Aguilar", "Stevens", "Murray", "Ford", "Castro", "Marshall",
    "Owens", "Harrison", "Fernandez", "McDonald", "Woods", "Washington", "Kennedy", "Wells",
    "Vargas", "Chen", "Freeman", "Webb", "Tucker", "Guzman", "Burns", "Crawford", "Olson",
    "Simpson", "Porter", "Gordon", "Mendez", "Silva", "Shaw", "Snyder", "Dixon", "Munoz",
    "Hunt", "Hicks", "Holmes", "Palmer", "Wagner", "Robertson", "Boyd", "Stone", "Salazar",
    "Fox", "Warren", "Mills", "Meyer", "Rice", "Schmidt", "Garza", "Daniels", "Ferguson",
    "Nichols", "Stephens", "Soto", "Weaver", "Gardner", "Payne", "Grant", "Dunn", "Kelley",
    "Spencer", "Hawkins", "Arnold", "Pierce", "Vazquez", "Hansen", "Peters", "Santos", "Hart",
    "Bradley", "Knight", "Elliott", "Cunningham", "Duncan", "Armstrong", "Hudson", "Carroll",
    "Lane", "Riley", "Andrews", "Alvarado", "Delgado", "Berry", "Perkins", "Hoffman",
    "Johnston", "Matthews", "Pena", "Richards", "Contreras", "Willis", "Carpenter", "Sandoval",
]

GENDERS = ("male", "female")


def first_names(gender: str) -> list[str]:
    """The first-name list for 'male' or 'female'."""
    if gender == "male":
        return FIRST_NAMES_MALE
    if gender == "female":
        return FIRST_NAMES_FEMALE
    raise ValueError(f"gender must be 'male' or 'female', got {gender!r}")


def random_full_name(rng: np.random.Generator, gender: str) -> str:
    """One 'First Last' name for the given sex (first and last never the same word)."""
    firsts = first_names(gender)
    while True:
        first = firsts[int(rng.integers(len(firsts)))]
        last = LAST_NAMES[int(rng.integers(len(LAST_NAMES)))]
        if first != last:
            return f"{first} {last}"


def collides(name: str, others) -> bool:
    """True when `name` and any of `others` contain one another (case-insensitive).

    Captions are searched for names by substring ('Ian Lee' is inside 'Brian Lee'), so two
    names that nest would make one person's occurrence count include the other's captions.
    """
    key = name.casefold()
    return any(key in o or o in key for o in others)


def draw_unique_names(rng: np.random.Generator, genders: list[str],
                      taken: list[str] = (), max_tries: int = 100_000) -> list[str]:
    """One name per entry of `genders`, none nesting with another or with `taken`."""
    used = [n.casefold() for n in taken]
    out = []
    for gender in genders:
        for _ in range(max_tries):
            name = random_full_name(rng, gender)
            if not collides(name, used):
                break
        else:
            raise RuntimeError(f"could not draw {len(genders)} distinct names from the lists")
        used.append(name.casefold())
        out.append(name)
    return out
