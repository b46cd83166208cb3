"""Identity splits: disjoint halves, filters, candidate names, clean captions."""
import pandas as pd
import pytest

from pipeline.data.splits import (assign_pools, candidate_names, clean_caption_pool, normalise_name,
                                  split_identities)
from pipeline.core.errors import PipelineError


def make_index(photos_per_identity: dict[str, int]) -> pd.DataFrame:
    rows = []
    image_id = 0
    for name, n in photos_per_identity.items():
        folder = name.replace(" ", "_")
        for _ in range(n):
            image_id += 1
            rows.append({"name": name, "folder": folder, "gender": "male", "image_id": image_id,
                         "face_id": image_id, "image": f"img/{folder}/{image_id}.jpg",
                         "face": f"face/{folder}/{image_id}.jpg"})
    return pd.DataFrame(rows)


INDEX = make_index({"Ann Lee": 20, "Bob Ray": 20, "Cy Dow": 8, "Di Fox": 20, "Ed Orr": 20})
OCC = pd.DataFrame({"name": ["Ann Lee", "Bob Ray", "Cy Dow", "Di Fox", "Ed Orr"],
                    "count": [5, 0, 50, 301, 120]})


def split(seed=0, **kw):
    args = dict(seed=seed, idia_fraction=0.5, min_idia_photos=10, max_count=300)
    args.update(kw)
    return split_identities(INDEX, OCC, **args)


def test_halves_are_disjoint_and_from_the_right_identity():
    r = split()
    for name in r.identities["name"]:
        idia_ids = {p.rsplit("/", 1)[1] for p in r.idia_photos.query("name == @name")["path"]}
        trig_ids = {p.rsplit("/", 1)[1] for p in r.trigger_faces.query("name == @name")["path"]}
        assert len(idia_ids) == 10 and len(trig_ids) == 10
        assert not idia_ids & trig_ids
        folder = name.replace(" ", "_")
        assert all(f"/{folder}/" in p for p in r.idia_photos.query("name == @name")["path"])
    assert r.idia_photos["path"].str.startswith("img/").all()
    assert r.trigger_faces["path"].str.startswith("face/").all()


def test_unseen_photos_are_held_back_from_both_halves():
    """Issue 14: photos that neither the attack nor any defense sees, for the audit."""
    index = make_index({"Ann Lee": 24, "Ed Orr": 24})
    r = split_identities(index, OCC, seed=0, idia_fraction=0.5, min_idia_photos=10, max_count=300,
                         unseen_photos=4)
    for name in ("Ann Lee", "Ed Orr"):
        ids = {kind: {p.rsplit("/", 1)[1] for p in table[table["name"] == name]["path"]}
               for kind, table in (("unseen", r.unseen_photos), ("idia", r.idia_photos),
                                   ("trigger", r.trigger_faces))}
        assert [len(ids[k]) for k in ("unseen", "idia", "trigger")] == [4, 10, 10]
        assert not ids["unseen"] & ids["idia"] and not ids["unseen"] & ids["trigger"]
    assert r.unseen_photos["path"].str.startswith("img/").all()       # whole photos, as the attack's
    assert r.identities["n_unseen"].tolist() == [4, 4]
    # holding none back leaves the attack's and the defense's photos as they were
    assert split(unseen_photos=0).idia_photos.equals(split().idia_photos)
    assert split().unseen_photos.empty


def test_filters_by_count_and_photo_number():
    r = split()
    kept = dict(zip(r.identities["name"], r.identities["member"]))
    assert kept == {"Ann Lee": True, "Bob Ray": False, "Ed Orr": True}
    assert r.dropped == {"no_occurrence_count": 0, "count_above_max": 1, "too_few_photos": 1}


def test_split_is_seeded():
    a, b, c = split(seed=1), split(seed=1), split(seed=2)
    assert a.idia_photos.equals(b.idia_photos)
    assert not a.idia_photos.equals(c.idia_photos)


FIRST_M = ["Adam", "Ben", "Carl", "Dan"]
FIRST_F = ["Amy", "Beth", "Cara", "Dora"]
LAST = ["Lee", "Ray", "Stone", "Wood", "Hill"]


def test_candidate_names_unique_disjoint_seeded():
    real = ["Adam Lee", "Amy Ray"]
    table = candidate_names(real, 30, seed=3, first_male=FIRST_M, first_female=FIRST_F,
                            last_names=LAST, forbidden=["Ben Wood"])
    assert len(table) == 30 and table["name"].is_unique
    fillers = table.loc[~table["real"], "name"].map(normalise_name)
    assert not set(fillers) & {normalise_name(n) for n in real + ["Ben Wood"]}
    assert set(table.loc[table["real"], "name"]) == set(real)
    males = sum(n.split()[0] in FIRST_M for n in table.loc[~table["real"], "name"])
    assert males == 14  # 28 fillers, equally per sex
    again = candidate_names(real, 30, seed=3, first_male=FIRST_M, first_female=FIRST_F,
                            last_names=LAST, forbidden=["Ben Wood"])
    assert table.equals(again)


def test_candidate_names_too_few_is_one_clear_error():
    with pytest.raises(PipelineError, match="candidate_names = 1 is smaller than the 2"):
        candidate_names(["A B", "C D"], 1, seed=0, first_male=FIRST_M, first_female=FIRST_F,
                        last_names=LAST)


def test_candidate_capacity_counts_only_taken_names_the_lists_can_produce():
    """548 real occurrence names are forbidden, but only those made of the lists' words block a
    filler (the paper profile on a small list failed with 'at most -368' before)."""
    forbidden = [f"Someone Else{i}" for i in range(500)] + ["Ben Lee"]
    n_male, n_female = len(set(FIRST_M)), len(set(FIRST_F))
    full = 2 * (len(LAST) * n_male - 2)   # Adam Lee and Ben Lee take two male combinations
    table = candidate_names(["Adam Lee"], 1 + full, seed=0, first_male=FIRST_M, first_female=FIRST_F,
                            last_names=LAST, forbidden=forbidden)
    assert (~table["real"]).sum() == full
    with pytest.raises(PipelineError, match="needs .* filler names but the name lists give at most"):
        candidate_names(["Adam Lee"], 2 + len(LAST) * (n_male + n_female), seed=0, first_male=FIRST_M,
                        first_female=FIRST_F, last_names=LAST, forbidden=forbidden)


def test_clean_caption_pool_drops_named_captions():
    captions = ["Ann Lee at the premiere", "a person with red hair", "ann  lee smiling",
                "a drawing of a red star", "portrait of Bob Ray", "a blue square"]
    keys = [f"{i:05d}" for i in range(len(captions))]
    pool = clean_caption_pool(keys, captions, ["Ann Lee", "Bob_Ray"], heldout=1, seed=0)
    assert list(pool["key"]) == ["00001", "00003", "00005"]
    assert (pool["split"] == "heldout").sum() == 1


def test_pools_split_members_and_nonmembers_alike_seeded_and_order_free():
    ids = pd.DataFrame({"name": [f"p{i:02d}" for i in range(30)], "member": [True] * 20 + [False] * 10})
    pools = assign_pools(ids, 0.5, seed=0)
    assert set(pools) == {"dev", "test"}
    assert (pools[ids["member"]] == "dev").sum() == 10 and (pools[~ids["member"]] == "dev").sum() == 5
    shuffled = ids.sample(frac=1.0, random_state=1)
    again = assign_pools(shuffled, 0.5, seed=0)
    assert dict(zip(shuffled["name"], again)) == dict(zip(ids["name"], pools))   # row order does not matter
    assert not assign_pools(ids, 0.5, seed=1).equals(pools)                        # the seed does
    assert (assign_pools(ids, 0.0, seed=0) == "test").all()
