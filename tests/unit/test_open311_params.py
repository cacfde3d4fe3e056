"""What an Open311 client sends, checked before anything is written: every bad field answered
with the status and a description that names the limit."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from callcenter.open311.params import Open311Error, Page, page_of, request_filter, submission

NOW = datetime(2026, 3, 15, 12, tzinfo=UTC)
GOOD = {"service_code": "water_leak", "jurisdiction_id": "benghazi", "lat": "32.1167", "long": "20.0667"}


def refused(form: dict[str, str]) -> Open311Error:
    with pytest.raises(Open311Error) as caught:
        submission(form)
    return caught.value


def test_a_good_submission_keeps_its_fields_and_attributes() -> None:
    sent = submission({**GOOD, "description": "  تسرب مياه  ", "attribute[neighbourhood]": "الصابري",
                       "phone": "0912345678", "locale": "en"})  # fmt: skip
    assert (sent.lat, sent.long, sent.description, sent.locale) == (32.1167, 20.0667, "تسرب مياه", "en")
    assert sent.attributes == {"neighbourhood": "الصابري"}


@pytest.mark.parametrize("lat", ["abc", "91", "-90.5", "nan", "inf", "1e400", "٣٢٫١", "32,1"])
def test_a_malformed_latitude_is_refused_with_400(lat: str) -> None:
    error = refused({**GOOD, "lat": lat})
    assert error.code == 400 and "lat is a decimal number of degrees from -90 to 90" in error.description


def test_a_malformed_longitude_is_refused_and_lat_long_go_together() -> None:
    assert "long is a decimal" in refused({**GOOD, "long": "200"}).description
    assert "give both" in refused({**GOOD, "long": ""}).description


def test_a_description_of_ten_thousand_characters_is_refused_naming_the_limit() -> None:
    error = refused({**GOOD, "description": "ت" * 10_000})
    assert error.code == 400
    assert error.description == ("description is limited to 2000 characters; this one has 10000: shorten it")
    assert submission({**GOOD, "description": "ت" * 2000}).description == "ت" * 2000


def test_the_required_fields_and_a_location_are_named_when_missing() -> None:
    assert refused({**GOOD, "service_code": ""}).description == "service_code was not provided"
    assert "jurisdiction_id was not provided" in refused({**GOOD, "jurisdiction_id": ""}).description
    no_place = {"service_code": "water_leak", "jurisdiction_id": "benghazi"}
    assert "a location is required" in refused(no_place).description
    assert submission({**no_place, "address_string": "شارع جمال عبد الناصر"}).address
    assert "media_url is an http" in refused({**GOOD, "media_url": "javascript:alert(1)"}).description


def test_the_request_filters_default_to_ninety_days_and_check_their_values() -> None:
    wanted = request_filter({}, now=NOW)
    assert (wanted.start, wanted.end, wanted.page) == (NOW - timedelta(days=90), NOW, Page(1, 100))
    closed = request_filter({"status": "closed", "service_code": "a,b"}, now=NOW)
    assert closed.statuses == ("closed", "duplicate", "resolved") and closed.service_codes == ("a", "b")
    with pytest.raises(Open311Error, match="status is open or closed"):
        request_filter({"status": "fixed"}, now=NOW)
    with pytest.raises(Open311Error, match="with its zone"):
        request_filter({"start_date": "2026-03-01"}, now=NOW)
    with pytest.raises(Open311Error, match="after end_date"):
        request_filter({"start_date": "2026-03-10T00:00:00Z", "end_date": "2026-03-01T00:00:00Z"}, now=NOW)
    explicit = request_filter({"start_date": "2026-03-01T00:00:00Z"}, now=NOW)
    assert explicit.end == datetime(2026, 5, 30, tzinfo=UTC)


def test_service_request_id_overrides_the_other_filters_and_a_bad_reference_is_not_found() -> None:
    from callcenter.requests.reference import reference_for

    ref = reference_for(42)
    wanted = request_filter(
        {"service_request_id": f"{ref.display}, {ref.digits}", "status": "bogus"}, now=NOW
    )
    assert wanted.references == (ref, ref) and wanted.statuses == ()
    with pytest.raises(Open311Error) as caught:
        request_filter(
            {"service_request_id": ref.display[:-1] + str((int(ref.display[-1]) + 1) % 10)}, now=NOW
        )
    assert caught.value.code == 404 and "check digit" in caught.value.description


@pytest.mark.parametrize(("params", "message"), [
    ({"page": "0"}, "page counts from 1"), ({"page": "x"}, "page is a whole number"),
    ({"page_size": "1001"}, "page_size is from 1 to 1000"), ({"page_size": "0"}, "page_size is from 1"),
])  # fmt: skip
def test_the_page_extension_checks_its_bounds(params: dict[str, str], message: str) -> None:
    with pytest.raises(Open311Error, match=message):
        page_of(params)
    assert page_of({"page": "3", "page_size": "20"}).offset == 40
