"""Services raise ``ApplicationError`` (or a subclass); the API answers each as before."""

from __future__ import annotations

from django.core.exceptions import ValidationError

from prefloop.exceptions import ApplicationError, InvalidInputError, api_exception_handler


def test_invalid_input_answers_like_a_django_validation_error():
    fields = {"sampling": "n must be at least 1", "pairing": "pairwise tasks are off"}
    ours = api_exception_handler(InvalidInputError(fields), {})
    django_style = api_exception_handler(ValidationError(fields), {})
    assert ours.status_code == django_style.status_code == 400
    assert ours.data == django_style.data == {k: [v] for k, v in fields.items()}


def test_invalid_input_is_an_application_error_with_one_message():
    exc = InvalidInputError({"source": "not a folder", "name": "taken"})
    assert isinstance(exc, ApplicationError)
    assert exc.message == "not a folder; taken"  # what pages and commands show
    assert api_exception_handler(ApplicationError("no"), {}).data == {"detail": "no"}
