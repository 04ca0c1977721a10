"""The form component: declared fields, validation, errors next to each field.

A page declares its fields once; the handler builds a :class:`Form` from the
posted data, calls :meth:`Form.validate`, hands ``form.cleaned`` to the domain
and turns a domain error into a field error with :meth:`Form.fail`. The
template renders it with the macros in ``templates/macros/forms.html``
(``form_start``, ``field``, ``submit``): every field shows its label, its
error (linked with ``aria-describedby``) and the value typed, except
passwords, which are never sent back.

Labels, help texts and built-in messages are gettext message ids, translated
when shown; labels coming from the database (custom fields) set
``translate=False``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from multidict import MultiDictProxy

from config.errors import HeraldError
from portal.i18n import N_, gettext

KINDS = ("text", "email", "password", "number", "url", "select", "checkbox", "textarea", "hidden")


@dataclass(frozen=True, slots=True)
class Field:
    """One input. ``clean`` functions take the stripped value and return it or raise Invalid."""

    name: str
    label: str
    kind: str = "text"
    required: bool = False
    max_length: int | None = None
    choices: Sequence[tuple[str, str]] = ()  # (value, label) for 'select'
    help: str = ""
    placeholder: str = ""
    autocomplete: str = ""
    translate: bool = True  # labels of custom fields are shown as written
    clean: Sequence[Callable[[Any], Any]] = ()
    attrs: Mapping[str, str] = field(default_factory=dict)

    @property
    def keeps_value(self) -> bool:
        return self.kind != "password"

    def text(self, message: str) -> str:
        return gettext(message) if self.translate and message else message


class Form:
    """Posted values, the cleaned result and the errors of one form."""

    def __init__(
        self, fields: Iterable[Field], data: Mapping[str, Any] | MultiDictProxy | None = None,
        *, initial: Mapping[str, Any] | None = None,
    ) -> None:
        self.fields: dict[str, Field] = {f.name: f for f in fields}
        self.values: dict[str, Any] = {}
        self.errors: dict[str, str] = {}
        self.form_errors: list[str] = []
        self.cleaned: dict[str, Any] = {}
        self.submitted = data is not None
        source = data if data is not None else (initial or {})
        for name, spec in self.fields.items():
            if spec.kind == "checkbox":
                raw = source.get(name)
                self.values[name] = raw not in (None, "", False, "0", "off") if data is not None else bool(raw)
            else:
                raw = source.get(name, "")
                self.values[name] = "" if raw is None else str(raw)

    def __getitem__(self, name: str) -> Field:
        return self.fields[name]

    def __iter__(self):
        return iter(self.fields.values())

    @property
    def valid(self) -> bool:
        return self.submitted and not self.errors and not self.form_errors

    def value(self, name: str) -> Any:
        """The value to show in the input (passwords are never shown back)."""
        spec = self.fields.get(name)
        if spec is not None and not spec.keeps_value:
            return ""
        return self.values.get(name, "")

    def error(self, name: str, message: str, **variables: Any) -> None:
        """Record an error (a message id) on a field, or on the form when ``name`` is unknown."""
        text = gettext(message, **variables)
        if name in self.fields:
            self.errors.setdefault(name, text)
        else:
            self.form_errors.append(text)

    def fail(self, exc: HeraldError) -> None:
        """Show a domain error: next to its field when it names one, above the form otherwise."""
        self.error(exc.field or "", exc.message or N_("Something went wrong. Please try again."))

    def validate(self) -> bool:
        """Check required fields, lengths and choices, run each field's ``clean``."""
        for name, spec in self.fields.items():
            raw = self.values[name]
            if spec.kind == "checkbox":
                if spec.required and not raw:
                    self.error(name, N_("This box must be ticked."))
                self.cleaned[name] = bool(raw)
                continue
            value = raw.strip() if spec.kind != "password" else raw
            if not value:
                if spec.required:
                    self.error(name, N_("This field is required."))
                self.cleaned[name] = "" if spec.kind != "number" else None
                continue
            if spec.max_length is not None and len(value) > spec.max_length:
                self.error(name, N_("Use at most %(count)s characters."), count=spec.max_length)
                continue
            if spec.kind == "select" and spec.choices and value not in {v for v, _ in spec.choices}:
                self.error(name, N_("Choose one of the options."))
                continue
            if spec.kind == "number":
                try:
                    value = int(value)
                except ValueError:
                    self.error(name, N_("Enter a whole number."))
                    continue
            try:
                for clean in spec.clean:
                    value = clean(value)
            except HeraldError as exc:
                self.error(exc.field if exc.field in self.fields else name, exc.message)
                continue
            self.cleaned[name] = value
        return self.valid

    def described_by(self, name: str) -> str:
        """The ids of the help and error texts of a field, for aria-describedby."""
        ids = []
        if self.fields[name].help:
            ids.append(f"{name}-help")
        if name in self.errors:
            ids.append(f"{name}-error")
        return " ".join(ids)


async def posted(request: Any) -> MultiDictProxy:
    """The request's form data (aiohttp caches it, so reading it twice is free)."""
    return await request.post()
