"""Telegram's MarkdownV2 and legacy Markdown parse modes, ported from TDLib like :mod:`sandbox.telegram_html`.

Errors carry TDLib's wording (e.g. ``Character '.' is reserved and must be escaped with the preceding '\\'``)
so a bot that forgets to escape fails here exactly as it would at Telegram.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sandbox.telegram_html import (
    Entity,
    EntityParseError,
    SourceCursor,
    char_utf16_len,
    check_link,
    sort_entities,
)

_RESERVED = frozenset("_*[]()~`>#+-=|{}.!\n")
_CODE_TYPES = frozenset({"Code", "Pre", "PreCode"})
_SPACES = frozenset(" \t\r\n\0\v")
_SIMPLE_TYPES = {
    "Bold": "bold",
    "Italic": "italic",
    "Underline": "underline",
    "Strikethrough": "strikethrough",
    "Spoiler": "spoiler",
    "Code": "code",
    "Pre": "pre",
    "BlockQuote": "blockquote",
    "ExpandableBlockQuote": "expandable_blockquote",
}
_CLOSER_WIDTH = {"Underline": 1, "Spoiler": 1, "Pre": 2, "PreCode": 2}


def _escapable(char: str) -> bool:
    return "\0" < char <= "~"


@dataclass
class _Open:
    kind: str  # TDLib's entity type name, used verbatim in error messages
    argument: str
    utf16_offset: int
    source_pos: int
    result_pos: int


@dataclass
class _MarkdownV2Parser(SourceCursor):
    out: list[str] = field(default_factory=list)
    entities: list[Entity] = field(default_factory=list)
    stack: list[_Open] = field(default_factory=list)
    utf16_offset: int = 0
    have_blockquote: bool = False
    can_start_blockquote: bool = True

    def emit(self, char: str) -> None:
        self.out.append(char)
        self.utf16_offset += char_utf16_len(char)

    def unterminated(self, entry: _Open) -> EntityParseError:
        return EntityParseError(
            f"Can't find end of {entry.kind} entity at byte offset {self.byte_offset(entry.source_pos)}"
        )

    def parse(self) -> tuple[str, list[Entity]]:
        i = 0
        while i < len(self.source):
            i = self.step(i) + 1
        self.finish_blockquote()
        if self.stack:
            raise self.unterminated(self.stack[-1])
        return "".join(self.out), sort_entities(self.entities)

    def step(self, i: int) -> int:
        """Consume the construct starting at ``i``; returns the index of its last character."""
        char = self.source[i]
        if char == "\\" and _escapable(self.at(i + 1)):
            i += 1
            self.emit(self.source[i])
            if self.source[i] != "\r":
                self.can_start_blockquote = self.source[i] == "\n"
            return i
        in_code = bool(self.stack) and self.stack[-1].kind in _CODE_TYPES
        if char not in (frozenset("`") if in_code else _RESERVED):
            if char != "\r":
                self.can_start_blockquote = False
            self.emit(char)
            return i
        if self.is_entity_end(i):
            return self.close(i)
        return self.open(i)

    def is_entity_end(self, i: int) -> bool:
        if not self.stack:
            return False
        char, nxt = self.source[i], self.at(i + 1)
        if self.have_blockquote and char == "\n" and nxt != ">":
            return True
        kind = self.stack[-1].kind
        return {
            "Bold": char == "*",
            "Italic": char == "_" and nxt != "_",
            "Code": char == "`",
            "Pre": char == "`" and nxt == "`" and self.at(i + 2) == "`",
            "PreCode": char == "`" and nxt == "`" and self.at(i + 2) == "`",
            "TextUrl": char == "]",
            "Underline": char == "_" and nxt == "_",
            "Strikethrough": char == "~",
            "Spoiler": char == "|" and nxt == "|",
            "CustomEmoji": char == "]",
        }.get(kind, False)

    def reserved(self, char: str) -> EntityParseError:
        return EntityParseError(f"Character '{char}' is reserved and must be escaped with the preceding '\\'")

    def open(self, i: int) -> int:
        start, char, argument = i, self.source[i], ""
        if char == "\n":
            self.emit("\n")
            self.can_start_blockquote = True
            return i
        if char == ">":
            if not self.can_start_blockquote:
                raise self.reserved(char)
            if self.have_blockquote:
                return i  # continuation line of the current quote
            self.have_blockquote = True
            kind = "BlockQuote"
        elif char == "_":
            kind = "Underline" if self.at(i + 1) == "_" else "Italic"
            i += kind == "Underline"
        elif char in "*~[":
            kind = {"*": "Bold", "~": "Strikethrough", "[": "TextUrl"}[char]
        elif char == "|" and self.at(i + 1) == "|":
            kind, i = "Spoiler", i + 1
        elif char == "!" and self.at(i + 1) == "[":
            kind, i = "CustomEmoji", i + 1
        elif char == "`" and self.at(i + 1) == "`" and self.at(i + 2) == "`":
            kind, argument, i = self.open_pre(i + 3)
        elif char == "`":
            kind = "Code"
        else:
            raise self.reserved(char)
        self.stack.append(_Open(kind, argument, self.utf16_offset, start, len(self.out)))
        return i

    def open_pre(self, i: int) -> tuple[str, str, int]:
        kind, argument = "Pre", ""
        language_end = i
        while self.at(language_end) not in _SPACES and self.at(language_end) != "`":
            language_end += 1
        if i != language_end and language_end < len(self.source) and self.at(language_end) != "`":
            kind, argument, i = "PreCode", self.source[i:language_end], language_end
        if self.at(i) in "\n\r":  # one leading newline (\n, \r, \r\n or \n\r) is not part of the code
            pair = self.at(i + 1) in "\n\r" and self.at(i) != self.at(i + 1)
            i += 2 if pair else 1
        return kind, argument, i - 1

    def close(self, i: int) -> int:
        char = self.source[i]
        top = self.stack[-1]
        kind = top.kind
        if char == "\n" and kind != "BlockQuote":
            # "||" right before the end of a quote marks it expandable.
            spoiler_just_opened = top.source_pos == i - 2 or (
                top.source_pos == i - 3 and self.out and self.out[-1] == "\r"
            )
            if kind != "Spoiler" or not spoiler_just_opened:
                raise self.unterminated(top)
            self.stack.pop()
            top = self.stack[-1]
            if top.kind != "BlockQuote":
                raise self.unterminated(top)
            kind = "ExpandableBlockQuote"
        skip = self.utf16_offset == top.utf16_offset
        argument = top.argument
        i += _CLOSER_WIDTH.get(kind, 0)
        if kind == "TextUrl":
            url, i = (
                self.read_url(i, top) if self.at(i + 1) == "(" else ("".join(self.out[top.result_pos :]), i)
            )
            argument = check_link(url)
            skip = skip or not argument
        elif kind == "CustomEmoji":
            if self.at(i + 1) != "(":
                raise EntityParseError("Custom emoji entity must contain a tg://emoji URL")
            url, i = self.read_url(i, top, what="a custom emoji URL")
            argument = _custom_emoji_id(url)
        elif kind in ("BlockQuote", "ExpandableBlockQuote"):
            self.have_blockquote = False
            self.emit(char)
            self.can_start_blockquote = True
            skip = False
        if not skip:
            self.entities.append(
                _to_bot_api(kind, top.utf16_offset, self.utf16_offset - top.utf16_offset, argument)
            )
        self.stack.pop()
        return i

    def read_url(self, i: int, top: _Open, what: str = "a URL") -> tuple[str, int]:
        i += 2
        begin = i
        chars: list[str] = []
        while i < len(self.source) and self.source[i] != ")":
            if self.source[i] == "\\" and _escapable(self.at(i + 1)):
                chars.append(self.source[i + 1])
                i += 2
                continue
            chars.append(self.source[i])
            i += 1
        if self.at(i) != ")":
            raise EntityParseError(f"Can't find end of {what} at byte offset {self.byte_offset(begin)}")
        return "".join(chars), i

    def finish_blockquote(self) -> None:
        if not self.have_blockquote:
            return
        kind = "BlockQuote"
        top = self.stack[-1]
        if top.kind == "Spoiler" and top.source_pos == len(self.source) - 2:
            self.stack.pop()
            kind = "ExpandableBlockQuote"
        top = self.stack[-1]
        if top.kind == "BlockQuote":
            self.have_blockquote = False
            length = self.utf16_offset - top.utf16_offset
            if length:
                self.entities.append(_to_bot_api(kind, top.utf16_offset, length, ""))
            self.stack.pop()


def _custom_emoji_id(url: str) -> str:
    prefix = "tg://emoji?id="
    value = url[len(prefix) :] if url.lower().startswith(prefix) else ""
    if not value.isdigit() or int(value) == 0:
        raise EntityParseError("Invalid custom emoji identifier specified")
    return value


def _to_bot_api(kind: str, offset: int, length: int, argument: str) -> Entity:
    entity: Entity = {"type": _SIMPLE_TYPES.get(kind, ""), "offset": offset, "length": length}
    if kind == "PreCode":
        entity.update(type="pre", language=argument)
    elif kind == "TextUrl":
        entity.update(type="text_link", url=argument)
    elif kind == "CustomEmoji":
        entity.update(type="custom_emoji", custom_emoji_id=argument)
    return entity


def parse_markdown_v2(text: str) -> tuple[str, list[Entity]]:
    """Parse MarkdownV2 into (text, entities) without trimming; raises EntityParseError."""
    return _MarkdownV2Parser(text).parse()


def parse_markdown(text: str) -> tuple[str, list[Entity]]:
    """Legacy ``Markdown`` mode: *bold*, _italic_, `code`, ```pre```, [text](url); no nesting."""
    out: list[str] = []
    entities: list[Entity] = []
    utf16 = 0
    i, size = 0, len(text)

    def at(k: int) -> str:
        return text[k] if k < size else "\0"

    while i < size:
        char = text[i]
        if char == "\\" and at(i + 1) in "_*`[":
            out.append(at(i + 1))
            utf16 += 1
            i += 2
            continue
        if char not in "_*`[":
            out.append(char)
            utf16 += char_utf16_len(char)
            i += 1
            continue
        begin = i
        end_char = "]" if char == "[" else char
        i += 1
        language, is_pre = "", False
        if char == "`" and at(i) == "`" and at(i + 1) == "`":
            i += 2
            is_pre = True
            language_end = i
            while at(language_end) not in _SPACES and at(language_end) != "`":
                language_end += 1
            if i != language_end and language_end < size and at(language_end) != "`":
                language, i = text[i:language_end], language_end
            if at(i) in "\n\r":
                i += 2 if at(i + 1) in "\n\r" and at(i) != at(i + 1) else 1
        offset = utf16
        while i < size and (text[i] != end_char or (is_pre and not (at(i + 1) == "`" and at(i + 2) == "`"))):
            out.append(text[i])
            utf16 += char_utf16_len(text[i])
            i += 1
        if i == size:
            byte_offset = len(text[:begin].encode("utf-8", "surrogatepass"))
            raise EntityParseError(f"Can't find end of the entity starting at byte offset {byte_offset}")
        if offset != utf16:
            entity: Entity = {"offset": offset, "length": utf16 - offset}
            if char == "[":
                if at(i + 1) == "(":
                    close = text.find(")", i + 2)
                    close = size if close < 0 else close
                    url, i = text[i + 2 : close], close
                else:
                    url = text[begin + 1 : i]
                entity.update(type="text_link", url=check_link(url))
                if not entity["url"]:
                    entity = {}
            elif char == "`":
                entity["type"] = "pre" if is_pre else "code"
                if language:
                    entity["language"] = language
            else:
                entity["type"] = "italic" if char == "_" else "bold"
            if entity:
                entities.append(entity)
        i += 3 if is_pre else 1
    return "".join(out), sort_entities(entities)
