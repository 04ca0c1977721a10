"""Marking messages for translation without depending on the portal.

``N_("…")`` returns its argument; ``python -m portal.catalog update`` finds the
marked strings (and the first argument of Herald's domain errors) in this
package and the portal shows them in the user's language.
"""


def N_(message: str) -> str:
    return message
