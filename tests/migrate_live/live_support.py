"""What every live migration test embeds and asks (all-MiniLM-L6-v2 on the live server):
six facts, a question only one of them answers, and the dimensions involved."""

from __future__ import annotations

#: all-MiniLM-L6-v2's dimension (the live server's model).
MINILM_DIM = 384
#: The dimension of the stores before the migration (a stand-in old model).
OLD_DIM = 24
FACTS = [
    "The Eiffel Tower is a wrought-iron tower in Paris.",
    "Photosynthesis lets plants turn sunlight into chemical energy.",
    "The Pacific is the largest and deepest ocean on Earth.",
    "Rust guarantees memory safety without a garbage collector.",
    "Espresso is brewed by forcing hot water through finely ground coffee.",
    "Mount Everest is the highest mountain above sea level.",
]
QUESTION = "Which ocean is the biggest?"
#: The index in `FACTS` of the one fact that answers `QUESTION`.
ANSWER = 2
