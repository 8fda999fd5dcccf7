"""Reading server-rendered pages in tests: just enough of a DOM for assertions (every element
with its attributes and text), and ``get_page`` to fetch one as a logged-in browser would."""

from __future__ import annotations

from html.parser import HTMLParser

from multinotes.testing import ApiClient


class Element:
    def __init__(self, tag: str, attrs: dict[str, str]) -> None:
        self.tag, self.attrs, self.text = tag, attrs, ""

    def __repr__(self) -> str:
        return f"<{self.tag} {self.attrs} {self.text.strip()[:60]!r}>"

    @property
    def words(self) -> str:
        """The text with its whitespace collapsed, as a reader sees it."""
        return " ".join(self.text.split())


class Page(HTMLParser):
    """Every element of a page with its attributes and text, outside <template>s (which hold
    markup for the page's scripts to clone)."""

    VOID = {"input", "meta", "link", "br", "hr", "img", "source", "wbr", "col", "area"}

    def __init__(self, html: str) -> None:
        super().__init__()
        self.html = html
        self.elements: list[Element] = []
        self.open: list[Element] = []
        self.in_template = 0
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "template":
            self.in_template += 1
        if self.in_template:
            return
        element = Element(tag, {k: v or "" for k, v in attrs})
        self.elements.append(element)
        if tag not in self.VOID:
            self.open.append(element)

    def handle_endtag(self, tag: str) -> None:
        if tag == "template":
            self.in_template -= 1
        if self.in_template:
            return
        for index in range(len(self.open) - 1, -1, -1):
            if self.open[index].tag == tag:
                del self.open[index:]
                break

    def handle_data(self, data: str) -> None:
        if not self.in_template:
            for element in self.open:
                element.text += data

    def find(self, tag: str, **attrs: str) -> list[Element]:
        """Elements with this tag and these attribute values (``aria_label`` stands for
        ``aria-label``, ``class_`` for ``class``)."""
        wanted = {k.rstrip("_").replace("_", "-"): v for k, v in attrs.items()}
        return [
            e
            for e in self.elements
            if e.tag == tag and all(e.attrs.get(k) == v for k, v in wanted.items())
        ]

    def one(self, tag: str, **attrs: str) -> Element:
        found = self.find(tag, **attrs)
        assert len(found) == 1, (tag, attrs, found)
        return found[0]

    def by_id(self, element_id: str) -> Element:
        found = [e for e in self.elements if e.attrs.get("id") == element_id]
        assert len(found) == 1, (element_id, found)
        return found[0]

    def has_id(self, element_id: str) -> bool:
        return any(e.attrs.get("id") == element_id for e in self.elements)

    def with_class(self, name: str) -> list[Element]:
        return [e for e in self.elements if name in e.attrs.get("class", "").split()]

    @property
    def flash(self) -> str:
        """The text of the flash messages shown (those with a ``role``)."""
        found = self.with_class("flash")
        return " ".join(f.words for f in found if "role" in f.attrs)


async def get_page(api: ApiClient, path: str, status: int = 200) -> Page:
    """The page at ``path`` (redirects not followed), after checking its status."""
    response = await api.get(path, allow_redirects=False)
    text = await response.text()
    assert response.status == status, (path, response.status, text[:500])
    return Page(text)
