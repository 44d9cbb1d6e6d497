"""Telegram's HTML parse_mode, ported from TDLib's ``parse_html`` so texts, offsets and errors match.

Entity offsets and lengths count UTF-16 code units; error positions count UTF-8 bytes of the *input*,
exactly like the real server. The Bot API prefixes every error below with
``Bad Request: can't parse entities: `` (see :data:`PARSE_ERROR_PREFIX`).

Behaviours worth knowing (they are Telegram's, not bugs of this port):

* an unknown ``&name;`` or a malformed ``&#...;`` is kept literally, it is *not* an error;
* ``<a>`` without a usable href becomes a link to its own text; a link Telegram rejects is dropped;
* ``tg://user?id=N`` links are returned as ``text_link`` here (Telegram would resolve a ``text_mention``);
* after parsing, :func:`fix_formatted_text` trims leading/trailing spaces and newlines like TDLib does.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

PARSE_ERROR_PREFIX = "can't parse entities: "

Entity = dict[str, Any]

_SUPPORTED_TAGS = frozenset(
    {"a", "b", "strong", "i", "em", "s", "strike", "del", "u", "ins", "tg-spoiler", "tg-emoji", "span", "pre"}
    | {"code", "blockquote"}
)
_SIMPLE_TAG_TYPES = {
    "b": "bold",
    "strong": "bold",
    "i": "italic",
    "em": "italic",
    "u": "underline",
    "ins": "underline",
    "s": "strikethrough",
    "strike": "strikethrough",
    "del": "strikethrough",
    "tg-spoiler": "spoiler",
    "span": "spoiler",
}
_NAMED_ENTITIES = {"lt": "<", "gt": ">", "amp": "&", "quot": '"'}
# TDLib's is_space() also treats NUL as a space; NUL doubles as our end-of-input sentinel.
_SPACES = frozenset(" \t\r\n\0\v")
_ASCII_ALNUM = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
_HEX_DIGITS = frozenset("0123456789abcdefABCDEF")
# Order of entities that start and end at the same place (TDLib's get_type_priority).
_TYPE_PRIORITY = {
    "blockquote": 0,
    "expandable_blockquote": 0,
    "pre": 11,
    "code": 20,
    "text_link": 49,
    "text_mention": 49,
    "bold": 90,
    "italic": 91,
    "underline": 92,
    "strikethrough": 93,
    "spoiler": 94,
    "custom_emoji": 99,
}
_SPECIAL = re.compile("[&<]")
_LINK_SCHEME_RE = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*):")
_ALLOWED_LINK_SCHEMES = frozenset({"http", "https", "tg", "ton", "tonsite", "ftp"})


class EntityParseError(ValueError):
    """The text Telegram puts after ``can't parse entities: ``."""


def utf16_len(text: str) -> int:
    """Length as Telegram counts it: UTF-16 code units."""
    if text.isascii():  # most text: one unit a character, no encoding needed
        return len(text)
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def char_utf16_len(char: str) -> int:
    return 2 if ord(char) > 0xFFFF else 1


def sort_entities(entities: list[Entity]) -> list[Entity]:
    """TDLib order: by offset, longer first, then by type priority."""
    return sorted(entities, key=lambda e: (e["offset"], -e["length"], _TYPE_PRIORITY.get(e["type"], 50)))


def check_link(url: str) -> str:
    """A simplified LinkManager::get_checked_link: normalised URL, or "" if Telegram would drop it."""
    url = url.strip()
    if not url or any(ch.isspace() for ch in url):
        return ""
    match = _LINK_SCHEME_RE.match(url)
    if match is None:
        url = "http://" + url
    elif match.group(1).lower() not in _ALLOWED_LINK_SCHEMES:
        return ""
    scheme, _, rest = url.partition("://")
    if (
        scheme.lower() in ("http", "https")
        and rest
        and "/" not in rest
        and "?" not in rest
        and "#" not in rest
    ):
        url += "/"
    return url


@dataclass
class _OpenTag:
    name: str
    argument: str
    utf16_offset: int
    result_pos: int


@dataclass
class SourceCursor:
    """Reading position helpers both parse modes share: a NUL past the end, as TDLib reads it, and
    byte offsets for Telegram's error messages."""

    source: str

    def at(self, i: int) -> str:
        return self.source[i] if i < len(self.source) else "\0"

    def byte_offset(self, i: int) -> int:
        return len(self.source[:i].encode("utf-8", "surrogatepass"))


@dataclass
class _HtmlParser(SourceCursor):
    out: list[str] = field(default_factory=list)
    entities: list[Entity] = field(default_factory=list)
    stack: list[_OpenTag] = field(default_factory=list)
    utf16_offset: int = 0
    has_surrogates: bool = False

    def fail(self, message: str) -> EntityParseError:
        return EntityParseError(message)

    def parse(self) -> tuple[str, list[Entity]]:
        i = 0
        while i < len(self.source):
            char = self.source[i]
            if char == "&":
                code, end = decode_html_entity(self.source, i)
                if code:
                    self.has_surrogates |= 0xD800 <= code <= 0xDFFF
                    self.append(chr(code))
                    i = end
                    continue
            if char != "<":
                # A run of plain text: up to the next '&' or '<', appended at once.
                special = _SPECIAL.search(self.source, i + 1)
                stop = special.start() if special else len(self.source)
                self.append(self.source[i:stop])
                i = stop
                continue
            i = self.end_tag(i) if self.at(i + 1) == "/" else self.start_tag(i)
        if self.stack:
            raise self.fail(f'Can\'t find end tag corresponding to start tag "{self.stack[-1].name}"')
        if self.has_surrogates:
            raise self.fail(
                "Text contains invalid Unicode characters after decoding HTML entities, "
                "check for unmatched surrogate code units"
            )
        for entity in self.entities:
            if entity["type"] == "code":
                entity.pop("language", None)
        return "".join(self.out), sort_entities(self.entities)

    def append(self, text: str) -> None:
        self.out.append(text)
        self.utf16_offset += utf16_len(text)

    def start_tag(self, begin: int) -> int:
        i = begin + 1
        while self.at(i) not in _SPACES and self.at(i) != ">":
            i += 1
        if self.at(i) == "\0":
            raise self.fail(f"Unclosed start tag at byte offset {self.byte_offset(begin)}")
        tag = self.source[begin + 1 : i].lower()
        if tag not in _SUPPORTED_TAGS:
            raise self.fail(f'Unsupported start tag "{tag}" at byte offset {self.byte_offset(begin)}')
        argument, i = self.attributes(tag, begin, i)
        if tag == "span" and argument != "spoiler":
            raise self.fail(
                f'Tag "span" must have class "tg-spoiler" at byte offset {self.byte_offset(begin)}'
            )
        self.stack.append(_OpenTag(tag, argument, self.utf16_offset, len(self.out)))
        return i + 1  # past '>'

    def attributes(self, tag: str, begin: int, i: int) -> tuple[str, int]:
        """Parse attributes up to the closing '>', returning the one argument the tag cares about."""
        argument = ""
        unclosed = f'Unclosed start tag "{tag}" at byte offset {self.byte_offset(begin)}'
        while self.at(i) != ">":
            while self.at(i) != "\0" and self.at(i) in _SPACES:
                i += 1
            if self.at(i) == ">":
                break
            name_begin = i
            while self.at(i) not in _SPACES and self.at(i) not in "=>/\"'":
                i += 1
            name = self.source[name_begin:i]
            if not name:
                raise self.fail(
                    f'Empty attribute name in the tag "{tag}" at byte offset {self.byte_offset(begin)}'
                )
            while self.at(i) != "\0" and self.at(i) in _SPACES:
                i += 1
            if self.at(i) != "=":
                if self.at(i) == "\0":
                    raise self.fail(unclosed)
                if tag == "blockquote" and name == "expandable":
                    argument = "1"
                continue
            i += 1
            while self.at(i) != "\0" and self.at(i) in _SPACES:
                i += 1
            if self.at(i) == "\0":
                raise self.fail(unclosed)
            value, i = self.attribute_value(i)
            if self.at(i) == "\0":
                raise self.fail(f"Unclosed start tag at byte offset {self.byte_offset(begin)}")
            argument = _tag_argument(tag, name, value, argument)
        return argument, i

    def attribute_value(self, i: int) -> tuple[str, int]:
        quote = self.at(i)
        if quote not in "'\"":
            # An unquoted name token: letters, digits, periods or hyphens; case-insensitive.
            begin = i
            while self.at(i) in _ASCII_ALNUM or self.at(i) in ".-":
                i += 1
            if self.at(i) not in _SPACES and self.at(i) != ">":
                raise self.fail(f"Unexpected end of name token at byte offset {self.byte_offset(begin)}")
            return self.source[begin:i].lower(), i
        i += 1
        chars: list[str] = []
        while self.at(i) != quote and self.at(i) != "\0":
            if self.at(i) == "&":
                code, end = decode_html_entity(self.source, i)
                if code:
                    chars.append(chr(code))
                    i = end
                    continue
            chars.append(self.at(i))
            i += 1
        if self.at(i) == quote:
            i += 1
        return "".join(chars), i

    def end_tag(self, begin: int) -> int:
        if not self.stack:
            raise self.fail(f"Unexpected end tag at byte offset {self.byte_offset(begin)}")
        i = begin + 2
        while self.at(i) not in _SPACES and self.at(i) != ">":
            i += 1
        end_name = self.source[begin + 2 : i].lower()
        while self.at(i) in _SPACES and self.at(i) != "\0":
            i += 1
        if self.at(i) != ">":
            raise self.fail(f"Unclosed end tag at byte offset {self.byte_offset(begin)}")
        open_tag = self.stack[-1]
        if end_name and end_name != open_tag.name:
            raise self.fail(
                f"Unmatched end tag at byte offset {self.byte_offset(begin)}, "
                f'expected "</{open_tag.name}>", found "</{end_name}>"'
            )
        if self.utf16_offset > open_tag.utf16_offset:
            self.close_entity(open_tag)
        self.stack.pop()
        return i + 1

    def close_entity(self, tag: _OpenTag) -> None:
        offset, length = tag.utf16_offset, self.utf16_offset - tag.utf16_offset
        if tag.name in _SIMPLE_TAG_TYPES:
            self.entities.append({"type": _SIMPLE_TAG_TYPES[tag.name], "offset": offset, "length": length})
        elif tag.name == "tg-emoji":
            if not tag.argument.isdigit() or int(tag.argument) == 0:
                raise self.fail("Invalid custom emoji identifier specified")
            self.entities.append(
                {"type": "custom_emoji", "offset": offset, "length": length, "custom_emoji_id": tag.argument}
            )
        elif tag.name == "a":
            url = check_link(tag.argument or "".join(self.out[tag.result_pos :]))
            if url:
                self.entities.append({"type": "text_link", "offset": offset, "length": length, "url": url})
        elif tag.name == "pre":
            self.close_pre(offset, length)
        elif tag.name == "code":
            self.close_code(tag, offset, length)
        else:  # blockquote
            kind = "expandable_blockquote" if tag.argument else "blockquote"
            self.entities.append({"type": kind, "offset": offset, "length": length})

    def same_span_as_last(self, kind: str, offset: int, length: int) -> Entity | None:
        last = self.entities[-1] if self.entities else None
        if last and last["type"] == kind and (last["offset"], last["length"]) == (offset, length):
            return last
        return None

    def close_pre(self, offset: int, length: int) -> None:
        code = self.same_span_as_last("code", offset, length)
        if code is not None and code.get("language"):  # <pre><code class="language-x">…</code></pre>
            code["type"] = "pre"
            return
        self.entities.append({"type": "pre", "offset": offset, "length": length})

    def close_code(self, tag: _OpenTag, offset: int, length: int) -> None:
        pre = self.same_span_as_last("pre", offset, length)
        if pre is not None and tag.argument:  # <code class="language-x"><pre>…</pre></code>
            pre["language"] = tag.argument
            return
        entity: Entity = {"type": "code", "offset": offset, "length": length}
        if tag.argument:
            entity["language"] = tag.argument  # dropped at the end unless a <pre> adopts it
        self.entities.append(entity)


def _tag_argument(tag: str, name: str, value: str, current: str) -> str:
    if tag == "a" and name == "href":
        return value
    if tag == "code" and name == "class" and value.startswith("language-"):
        return value[len("language-") :]
    if tag == "span" and name == "class" and value.startswith("tg-"):
        return value[len("tg-") :]
    if tag == "tg-emoji" and name == "emoji-id":
        return value
    if tag == "blockquote" and name == "expandable":
        return "1"
    return current


def decode_html_entity(text: str, pos: int) -> tuple[int, int]:
    """Decode the character reference at ``text[pos] == '&'``: (code point or 0 if none, end position)."""

    def at(i: int) -> str:
        return text[i] if i < len(text) else "\0"

    end = pos + 1
    code = 0
    if at(pos + 1) == "#":
        end += 1
        if at(pos + 2) == "x":
            end += 1
            while at(end) in _HEX_DIGITS:
                code = code * 16 + int(at(end), 16)
                end += 1
        else:
            while at(end).isascii() and at(end).isdigit():
                code = code * 10 + int(at(end))
                end += 1
        if code == 0 or code >= 0x10FFFF or end - pos >= 10:
            return 0, pos
    else:
        while at(end).isascii() and at(end).isalpha():
            end += 1
        named = _NAMED_ENTITIES.get(text[pos + 1 : end])
        if named is None:
            return 0, pos
        code = ord(named)
    if at(end) == ";":
        end += 1
    return code, end


def parse_html(html: str) -> tuple[str, list[Entity]]:
    """Parse Telegram HTML into (text, entities) without trimming; raises :class:`EntityParseError`."""
    return _HtmlParser(html).parse()


def fix_formatted_text(text: str, entities: list[Entity]) -> tuple[str, list[Entity]]:
    """TDLib's trimming: drop trailing and leading spaces/newlines, clipping entities; "" if nothing is left.

    Leading whitespace is kept when an entity starts inside it, as in TDLib.
    """
    entities = [dict(e) for e in entities if e["length"] > 0]
    stripped = text.rstrip(" \n")
    if not stripped:
        return "", []
    end = utf16_len(stripped)
    kept: list[Entity] = []
    for entity in sort_entities(entities):
        if entity["offset"] >= end:
            continue
        entity["length"] = min(entity["length"], end - entity["offset"])
        kept.append(entity)
    first_entity = kept[0]["offset"] if kept else end
    lead = 0
    while lead < first_entity and stripped[lead] in " \n":
        lead += 1
    for entity in kept:
        entity["offset"] -= lead
    return stripped[lead:], sort_entities(kept)
