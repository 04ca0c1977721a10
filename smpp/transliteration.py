"""Replace look-alike characters with GSM 7-bit ones, so text stays in the cheap alphabet.

Text pasted from word processors and phones carries typographic characters (curly quotes,
long dashes, the ellipsis, no-break and other Unicode spaces) that GSM 7-bit lacks; one of
them forces a whole message into UCS-2, at 70 instead of 160 characters a part. Each
replacement below looks the same, or nearly, on a handset. Letters with diacritics that
are merely *similar* (á for a) are not replaced: that changes the words.

Opt-in: nothing calls :func:`transliterate` unless asked.
"""

from __future__ import annotations

_SINGLE_QUOTE = "'"
_DOUBLE_QUOTE = '"'

_LOOKALIKES: dict[str, str] = {
    # Quotes and primes.
    "\u2018": _SINGLE_QUOTE,  # left single quotation mark
    "\u2019": _SINGLE_QUOTE,  # right single quotation mark / typographic apostrophe
    "\u201a": _SINGLE_QUOTE,  # single low-9 quotation mark
    "\u201b": _SINGLE_QUOTE,  # single high-reversed-9 quotation mark
    "\u2032": _SINGLE_QUOTE,  # prime
    "\u02bc": _SINGLE_QUOTE,  # modifier letter apostrophe
    "\u00b4": _SINGLE_QUOTE,  # acute accent
    "`": _SINGLE_QUOTE,  # grave accent (not in GSM 7-bit)
    "\u2039": _SINGLE_QUOTE,  # single left-pointing angle quotation mark
    "\u203a": _SINGLE_QUOTE,  # single right-pointing angle quotation mark
    "\u201c": _DOUBLE_QUOTE,  # left double quotation mark
    "\u201d": _DOUBLE_QUOTE,  # right double quotation mark
    "\u201e": _DOUBLE_QUOTE,  # double low-9 quotation mark
    "\u201f": _DOUBLE_QUOTE,  # double high-reversed-9 quotation mark
    "\u2033": _DOUBLE_QUOTE,  # double prime
    "\u00ab": _DOUBLE_QUOTE,  # left-pointing double angle quotation mark
    "\u00bb": _DOUBLE_QUOTE,  # right-pointing double angle quotation mark
    # Dashes, hyphens and the minus sign.
    "\u2010": "-",  # hyphen
    "\u2011": "-",  # non-breaking hyphen
    "\u2012": "-",  # figure dash
    "\u2013": "-",  # en dash
    "\u2014": "-",  # em dash
    "\u2015": "-",  # horizontal bar
    "\u2212": "-",  # minus sign
    # Punctuation.
    "\u2026": "...",  # horizontal ellipsis
    "\u2024": ".",  # one dot leader
    "\u2044": "/",  # fraction slash
    "\u02c6": "^",  # modifier letter circumflex
    "\u02dc": "~",  # small tilde
    # Spaces: no-break, the U+2000 block, narrow and ideographic spaces, tabulation.
    "\t": " ",
    "\u00a0": " ",
    "\u1680": " ",
    **{chr(cp): " " for cp in range(0x2000, 0x200B)},
    "\u202f": " ",
    "\u205f": " ",
    "\u3000": " ",
    # Line and paragraph separators become the line feed GSM has.
    "\u2028": "\n",
    "\u2029": "\n",
    # Invisible characters: zero-width space, word joiner, BOM, soft hyphen.
    "\u200b": "",
    "\u2060": "",
    "\ufeff": "",
    "\u00ad": "",
    # GSM 03.38 draws 0x09 as Ç while the Unicode mapping reads it as ç: handsets show
    # either, so the small letter is sent as the code point both agree on.
    "ç": "Ç",
    # Greek capitals identical to Latin ones; the rest of the Greek capitals GSM has.
    "\u0391": "A",
    "\u0392": "B",
    "\u0395": "E",
    "\u0396": "Z",
    "\u0397": "H",
    "\u0399": "I",
    "\u039a": "K",
    "\u039c": "M",
    "\u039d": "N",
    "\u039f": "O",
    "\u03a1": "P",
    "\u03a4": "T",
    "\u03a5": "Y",
    "\u03a7": "X",
}

_TABLE = str.maketrans(_LOOKALIKES)


def transliterate(text: str) -> str:
    """``text`` with typographic look-alikes replaced by GSM 7-bit characters.

    Characters without a look-alike are left alone, so the result may still need UCS-2.
    """
    return text.translate(_TABLE)
