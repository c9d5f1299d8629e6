"""The small corpus and questions the retrieval examples share (each question has exactly
one right document, by key)."""

from __future__ import annotations

DOCUMENTS = {
    "risotto": "Risotto wants warm stock added one ladle at a time while stirring.",
    "light-year": "A light-year is the distance light travels in one year.",
    "git": "Git branches let you work on a feature without touching main.",
    "compost": "Compost improves soil structure and feeds earthworms.",
    "inflation": "Inflation reduces the purchasing power of money over time.",
    "peloton": "Cyclists ride in a peloton to save energy by drafting.",
    "vaccines": "Vaccines train the immune system to recognise a pathogen.",
    "jet-lag": "Jet lag is worse when flying east across many time zones.",
}
QUESTIONS = {
    "How far does light go in a year?": "light-year",
    "Why do prices make my savings worth less?": "inflation",
    "How do I develop a feature without breaking the main code?": "git",
    "Why do bike racers stay close together?": "peloton",
    "What makes the body able to fight a disease it has not met?": "vaccines",
}
