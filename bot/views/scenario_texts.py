"""Titles and suggested replies of the built-in scenario rows (their keys are in config/scenarios.yaml)."""

from __future__ import annotations

from aiogram.utils.i18n import lazy_gettext as __

TITLES = {
    "no_reply": __("Asked, then went quiet"),
    "price_objection": __("Finds the price too high"),
    "promo_no_order": __("Told about the promotion, no order"),
    "unpaid": __("Ordered, not paid"),
    "out_of_stock": __("Wanted an item that is out of stock"),
    "product_doubt": __("Doubts about the product"),
    "hesitating": __("Hesitating: “I'll think about it”"),
}

REPLIES = {
    "no_reply": __("Are you still there? Tell me a little more and I'll help you pick the right one."),
    "price_objection": __(
        "Offer what the shop has: coupons, the current discount, free shipping, a better deal for two."
    ),
    "promo_no_order": __(
        "Just a reminder: the promotion ends soon and places are limited, shall I hold one?"
    ),
    "unpaid": __("I see your order is waiting for payment; pay now and we'll ship it today."),
    "out_of_stock": __("Good news: the item you asked about is back in stock. Shall I keep one for you?"),
    "product_doubt": __(
        "Answer patiently and as an expert: material, size, care, reviews from other buyers."
    ),
    "hesitating": __(
        "Have you had time to think it over? The promotion ends tonight, I'd hate you to miss it."
    ),
}
