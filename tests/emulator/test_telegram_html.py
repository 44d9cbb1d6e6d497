"""Telegram's parse modes as ported from TDLib: texts, UTF-16 entity offsets and error wording."""

from __future__ import annotations

import pytest

from sandbox.emulator_markdown import parse_markdown, parse_markdown_v2
from sandbox.telegram_html import EntityParseError, check_link, fix_formatted_text, parse_html, utf16_len


def entity(kind: str, offset: int, length: int, **extra: str) -> dict[str, object]:
    return {"type": kind, "offset": offset, "length": length, **extra}


# --------------------------------------------------------------------------- HTML


def test_plain_text_passes_through() -> None:
    assert parse_html("hello, world") == ("hello, world", [])


def test_nested_tags_sorted_outer_first() -> None:
    text, entities = parse_html("<b>bold <i>both</i></b> <u>u</u>")
    assert text == "bold both u"
    assert entities == [entity("bold", 0, 9), entity("italic", 5, 4), entity("underline", 10, 1)]


@pytest.mark.parametrize(
    ("tag", "kind"),
    [
        ("b", "bold"),
        ("strong", "bold"),
        ("i", "italic"),
        ("em", "italic"),
        ("u", "underline"),
        ("ins", "underline"),
        ("s", "strikethrough"),
        ("strike", "strikethrough"),
        ("del", "strikethrough"),
        ("code", "code"),
        ("pre", "pre"),
        ("tg-spoiler", "spoiler"),
        ("blockquote", "blockquote"),
    ],
)
def test_every_simple_tag(tag: str, kind: str) -> None:
    assert parse_html(f"x<{tag}>yz</{tag}>") == ("xyz", [entity(kind, 1, 2)])


def test_tags_are_case_insensitive_and_end_tag_name_optional() -> None:
    assert parse_html("<B>X</B><i>y</>") == ("Xy", [entity("bold", 0, 1), entity("italic", 1, 1)])


def test_offsets_count_utf16_code_units() -> None:
    text, entities = parse_html("😀 <b>ü😀</b>")
    assert text == "😀 ü😀"
    assert entities == [entity("bold", 3, 3)]
    assert utf16_len(text) == 6


def test_character_references() -> None:
    text, _ = parse_html("&lt;&gt;&amp;&quot; &#65;&#x42; &lt no-semicolon")
    assert text == '<>&" AB < no-semicolon'


def test_unknown_or_malformed_references_stay_literal() -> None:
    assert parse_html("&foo; &nbsp; &#0; & alone &#xZZ;")[0] == "&foo; &nbsp; &#0; & alone &#xZZ;"


def test_links() -> None:
    text, entities = parse_html('<a href="https://example.com/a?b=1&amp;c=2">x</a> <a>t.me/x</a>')
    assert text == "x t.me/x"
    assert entities == [
        entity("text_link", 0, 1, url="https://example.com/a?b=1&c=2"),
        entity("text_link", 2, 6, url="http://t.me/x"),
    ]


def test_link_attribute_quoting_variants() -> None:
    _, single = parse_html("<a href='https://a.io/x'>x</a>")
    _, bare = parse_html("<a href=a.io>x</a>")
    assert single[0]["url"] == "https://a.io/x"
    assert bare[0]["url"] == "http://a.io/"


def test_user_link_is_kept_as_text_link() -> None:
    assert parse_html('<a href="tg://user?id=42">Ann</a>')[1] == [
        entity("text_link", 0, 3, url="tg://user?id=42")
    ]


def test_link_with_rejected_scheme_is_dropped() -> None:
    assert parse_html('<a href="javascript:alert(1)">x</a>') == ("x", [])


def test_pre_with_language() -> None:
    text, entities = parse_html('<pre><code class="language-python">x = 1</code></pre>')
    assert (text, entities) == ("x = 1", [entity("pre", 0, 5, language="python")])


def test_code_language_without_pre_is_ignored() -> None:
    assert parse_html('<code class="language-go">x</code>')[1] == [entity("code", 0, 1)]


def test_spoiler_span_and_expandable_blockquote() -> None:
    text, entities = parse_html('<span class="tg-spoiler">s</span><blockquote expandable>q</blockquote>')
    assert text == "sq"
    assert entities == [entity("spoiler", 0, 1), entity("expandable_blockquote", 1, 1)]


def test_custom_emoji() -> None:
    parsed = parse_html('<tg-emoji emoji-id="5368324170671202286">👍</tg-emoji>')
    assert parsed == ("👍", [entity("custom_emoji", 0, 2, custom_emoji_id="5368324170671202286")])


def test_empty_elements_produce_no_entity() -> None:
    assert parse_html("<b></b>x<i></i>") == ("x", [])


@pytest.mark.parametrize(
    ("html", "error"),
    [
        ("<div>x</div>", 'Unsupported start tag "div" at byte offset 0'),
        ("é<p>", 'Unsupported start tag "p" at byte offset 2'),
        ("<br/>", 'Unsupported start tag "br/" at byte offset 0'),
        ("<b>x", 'Can\'t find end tag corresponding to start tag "b"'),
        ("<b>x</i>", 'Unmatched end tag at byte offset 4, expected "</b>", found "</i>"'),
        ("x</b>", "Unexpected end tag at byte offset 1"),
        ("<b", "Unclosed start tag at byte offset 0"),
        ("<b>x</b", "Unclosed end tag at byte offset 4"),
        ('<a href="x>', "Unclosed start tag at byte offset 0"),
        ("<span>x</span>", 'Tag "span" must have class "tg-spoiler" at byte offset 0'),
        ('<tg-emoji emoji-id="x">a</tg-emoji>', "Invalid custom emoji identifier specified"),
        ("<a href=x/y>z</a>", "Unexpected end of name token at byte offset 8"),
        ('<b ="x">y</b>', 'Empty attribute name in the tag "b" at byte offset 0'),
    ],
)
def test_errors_match_telegram(html: str, error: str) -> None:
    with pytest.raises(EntityParseError) as caught:
        parse_html(html)
    assert str(caught.value) == error


def test_a_lone_less_than_sign_is_an_error_like_at_telegram() -> None:
    with pytest.raises(EntityParseError, match='Unsupported start tag "3" at byte offset 2'):
        parse_html("2 <3 you")


# --------------------------------------------------------------------------- trimming and links


def test_fix_formatted_text_trims_spaces_and_newlines() -> None:
    assert fix_formatted_text("\n  hi there \n\n", []) == ("hi there", [])
    assert fix_formatted_text(" \n ", []) == ("", [])


def test_fix_formatted_text_shifts_and_clips_entities() -> None:
    text, entities = fix_formatted_text("  ab cd  ", [entity("bold", 2, 7)])
    assert (text, entities) == ("ab cd", [entity("bold", 0, 5)])


def test_fix_formatted_text_keeps_leading_space_inside_an_entity() -> None:
    assert fix_formatted_text(" x ", [entity("bold", 0, 2)]) == (" x", [entity("bold", 0, 2)])


def test_check_link() -> None:
    assert check_link("example.com") == "http://example.com/"
    assert check_link("https://example.com/path") == "https://example.com/path"
    assert check_link("ftp://files.example.com/a") == "ftp://files.example.com/a"
    assert check_link("javascript:alert(1)") == ""
    assert check_link("has space.com") == ""


# --------------------------------------------------------------------------- MarkdownV2 and Markdown


def test_markdown_v2_entities() -> None:
    text, entities = parse_markdown_v2(r"*b* _i_ __u__ ~s~ ||p|| `c` [l](https://x.io) \. \*")
    assert text == "b i u s p c l . *"
    assert entities == [
        entity("bold", 0, 1),
        entity("italic", 2, 1),
        entity("underline", 4, 1),
        entity("strikethrough", 6, 1),
        entity("spoiler", 8, 1),
        entity("code", 10, 1),
        entity("text_link", 12, 1, url="https://x.io/"),
    ]


def test_markdown_v2_pre_and_quotes() -> None:
    assert parse_markdown_v2("```python\nprint(1)\n```") == (
        "print(1)\n",
        [entity("pre", 0, 9, language="python")],
    )
    assert parse_markdown_v2(">quote\n>more\nafter") == ("quote\nmore\nafter", [entity("blockquote", 0, 11)])
    assert parse_markdown_v2("**>hidden\n>rest||")[1] == [entity("expandable_blockquote", 0, 11)]


@pytest.mark.parametrize(
    ("markdown", "error"),
    [
        ("Total: 5.", "Character '.' is reserved and must be escaped with the preceding '\\'"),
        ("a-b", "Character '-' is reserved and must be escaped with the preceding '\\'"),
        ("(x)", "Character '(' is reserved and must be escaped with the preceding '\\'"),
        ("*open", "Can't find end of Bold entity at byte offset 0"),
        ("ж _x", "Can't find end of Italic entity at byte offset 3"),
        ("[x](http://a", "Can't find end of a URL at byte offset 4"),
    ],
)
def test_markdown_v2_errors(markdown: str, error: str) -> None:
    with pytest.raises(EntityParseError) as caught:
        parse_markdown_v2(markdown)
    assert str(caught.value) == error


def test_legacy_markdown() -> None:
    text, entities = parse_markdown(r"*b* _i_ `c` [t](http://x.io/) \_ 5.0")
    assert text == "b i c t _ 5.0"
    assert entities == [
        entity("bold", 0, 1),
        entity("italic", 2, 1),
        entity("code", 4, 1),
        entity("text_link", 6, 1, url="http://x.io/"),
    ]
    with pytest.raises(EntityParseError, match="Can't find end of the entity starting at byte offset 2"):
        parse_markdown("a *b")
