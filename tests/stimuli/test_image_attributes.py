"""Per-image attributes beyond the label: images.csv's other columns at import, an attributes
CSV later (service and admin), shown in the admin, carried by the set's download, read by the
analyses; a bad CSV is refused with what is wrong and changes nothing."""

from __future__ import annotations

import csv
import io
import zipfile

import pytest
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from backend.stimuli import attributes, services
from backend.stimuli.models import Image, ImageSet
from tests.stimuli.factories import png_bytes, zip_with
from tests.stimuli.test_image_sources import import_zip, table

pytestmark = pytest.mark.django_db(transaction=True)


def attribute_rows(image_set: ImageSet) -> dict[str, dict[str, str]]:
    return dict(image_set.members.values_list("original_name", "attributes"))


def small_set(name: str = "pets") -> ImageSet:
    files = {"cats/a.png": png_bytes(1), "cats/b.png": png_bytes(2), "dogs/c.png": png_bytes(3)}
    files["images.csv"] = table(
        [
            ["name", "label", "background", "collar"],
            ["cats/a.png", "", "grass", "yes"],
            ["cats/b.png", "", "indoor", ""],
            ["dogs/c.png", "", "grass", "no"],
        ]
    )
    return import_zip(name, zip_with(files))


def test_an_imports_extra_columns_become_attributes_and_round_trip_through_the_download() -> None:
    image_set = small_set()
    expected = {
        "cats/a.png": {"background": "grass", "collar": "yes"},
        "cats/b.png": {"background": "indoor"},
        "dogs/c.png": {"background": "grass", "collar": "no"},
    }
    assert attribute_rows(image_set) == expected
    archive = services.image_set_archive(image_set).read()
    with zipfile.ZipFile(io.BytesIO(archive)) as opened:
        header = next(csv.reader(io.StringIO(opened.read("images.csv").decode())))
    assert header == ["name", "label", "source", "background", "collar"]
    again = import_zip("pets-again", archive)
    assert attribute_rows(again) == expected


def test_an_attributes_csv_later_sets_its_columns_and_keeps_the_others() -> None:
    image_set = small_set()
    done = attributes.do_set_image_attributes(
        image_set,
        table(
            [
                ["name", "collar", "pose"],
                ["cats/a.png", "", "lying"],
                ["dogs/c.png", "yes", "standing"],
            ]
        ),
    )
    assert done == {"images": 2, "columns": ["collar", "pose"]}
    assert attribute_rows(image_set) == {
        "cats/a.png": {"background": "grass", "pose": "lying"},
        "cats/b.png": {"background": "indoor"},
        "dogs/c.png": {"background": "grass", "collar": "yes", "pose": "standing"},
    }
    by_image = attributes.image_attributes(image_set.pk)
    member = image_set.members.get(original_name="dogs/c.png")
    assert by_image[member.image_id] == {
        "label": "dogs",
        "background": "grass",
        "collar": "yes",
        "pose": "standing",
    }


BAD_TABLES = [
    ([["image", "pose"], ["cats/a.png", "x"]], "needs a 'name' column"),
    ([["name", "label", "source"], ["cats/a.png", "cats", ""]], "no attribute column"),
    ([["name", "pose"], ["cats/a.png", "x"], ["cats/zzz.png", "y"]], "1 image(s) that are not in"),
    ([["name", "pose"], ["cats/a.png", "x"], ["cats/a.png", "y"]], "names 'cats/a.png' twice"),
    ([["name", "pose"], ["cats/a.png", "x", "extra"]], "Line 2 of the attributes CSV has 3 cells"),
    ([["name", "pose", "pose"], ["cats/a.png", "x", "y"]], "repeats columns: pose"),
]


@pytest.mark.parametrize(("rows", "says"), BAD_TABLES)
def test_a_bad_attributes_csv_is_refused_with_what_is_wrong_and_nothing_changes(
    rows: list[list[str]], says: str
) -> None:
    image_set = small_set()
    before = attribute_rows(image_set)
    with pytest.raises(ValidationError) as refused:
        attributes.do_set_image_attributes(image_set, table(rows))
    assert says in " ".join(refused.value.messages)
    assert attribute_rows(image_set) == before


def test_a_csv_that_is_not_utf8_is_refused() -> None:
    image_set = small_set()
    with pytest.raises(ValidationError, match="not UTF-8"):
        attributes.do_set_image_attributes(
            image_set, "name,pose\ncats/a.png,\xe9".encode("latin-1")
        )


def change_form(image_set: ImageSet, csv_bytes: bytes) -> dict[str, object]:
    return {
        "name": image_set.name,
        "description": "",
        "attributes_csv": SimpleUploadedFile("attributes.csv", csv_bytes, "text/csv"),
    }


def test_the_admin_takes_an_attributes_csv_and_shows_the_attributes(
    client: Client, superuser: User
) -> None:
    image_set = small_set()
    client.force_login(superuser)
    url = f"/admin/stimuli/imageset/{image_set.pk}/change/"
    response = client.post(
        url, change_form(image_set, table([["name", "pose"], ["cats/b.png", "sitting"]]))
    )
    assert response.status_code == 302
    assert attribute_rows(image_set)["cats/b.png"] == {"background": "indoor", "pose": "sitting"}
    html = client.get(url).content.decode()
    assert "<th>background</th><td>3</td><td>grass (2), indoor (1)</td>" in html
    assert "<th>pose</th><td>1</td><td>sitting (1)</td>" in html


def test_the_admin_refuses_a_bad_attributes_csv_on_the_form_and_changes_nothing(
    client: Client, superuser: User
) -> None:
    image_set = small_set()
    before = attribute_rows(image_set)
    client.force_login(superuser)
    url = f"/admin/stimuli/imageset/{image_set.pk}/change/"
    form = change_form(image_set, table([["name", "pose"], ["cats/nope.png", "x"]]))
    form["description"] = "changed"
    response = client.post(url, form)
    assert response.status_code == 200
    assert "that are not in pets: &#x27;cats/nope.png&#x27;" in response.content.decode()
    image_set.refresh_from_db()
    assert image_set.description == "" and attribute_rows(image_set) == before


def test_a_subset_of_stored_images_keeps_their_names_and_attributes_under_new_labels() -> None:
    image_set = small_set()
    ids = dict(image_set.members.values_list("original_name", "image_id"))
    labels = {ids["dogs/c.png"]: "1_dog", ids["cats/a.png"]: "0_cat"}
    subset = services.do_create_image_subset(image_set, "pets-two", labels, description="two")
    rows = list(subset.members.values_list("position", "image_id", "label", "original_name",
                                           "attributes"))  # fmt: skip
    assert rows == [
        (0, ids["cats/a.png"], "0_cat", "cats/a.png", {"background": "grass", "collar": "yes"}),
        (1, ids["dogs/c.png"], "1_dog", "dogs/c.png", {"background": "grass", "collar": "no"}),
    ]
    assert (subset.origin, subset.owner, subset.source) == ("zip", None, "subset of pets")
    assert Image.objects.count() == 3  # nothing stored again


def test_a_subset_with_a_taken_name_or_a_foreign_image_is_refused_and_nothing_is_made() -> None:
    image_set, other = small_set(), small_set("others")
    mine = image_set.members.get(original_name="cats/a.png").image_id
    with pytest.raises(ValidationError, match="an image set named 'others' exists"):
        services.do_create_image_subset(image_set, "others", {mine: "0"})
    foreign = services.store_image(png_bytes(9))  # stored, in no set
    with pytest.raises(ValidationError, match="1 of the images are not in pets"):
        services.do_create_image_subset(image_set, "pets-two", {mine: "0", foreign.pk: "1"})
    assert ImageSet.objects.count() == 2 and other.members.count() == 3
