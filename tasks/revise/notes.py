"""How a reviewer's note becomes the instruction a revision is made with.

The text is a pure function of the prompt and the notes: the same rejection
revised twice gives the same prompt, so the same asset_id, and the second
revise finds it stored (DESIGN invariant 1).
"""

from __future__ import annotations

from collections.abc import Sequence

PROMPT_HEAD = "Revision: fix the following:"
EDIT_HEAD = "Edit the first image: fix the following:"
EDIT_KEEP = "Keep everything else in it as it is."
EDIT_REFERENCES = "The other images are the reference images it was made from."
EDIT_BRIEF = "It was made for this brief:"


def revised_prompt(prompt: str, notes: Sequence[str]) -> str:
    """`--how prompt`: the first version's prompt with every note of the slot's rejections
    as an instruction, oldest first (a fix asked for earlier is not dropped later)."""
    return f"{prompt}\n\n{PROMPT_HEAD}{_listed(notes)}"


def edit_instruction(prompt: str, notes: Sequence[str], references: int) -> str:
    """`--how edit`: the instruction sent with the rejected image (the first input image)
    and the row's own `references`: fix the notes, keep the rest, the brief it answers."""
    lines = [f"{EDIT_HEAD}{_listed(notes)}", EDIT_KEEP]
    if references:
        lines.append(EDIT_REFERENCES)
    return "\n".join(lines) + f"\n\n{EDIT_BRIEF}\n{prompt}"


def _listed(notes: Sequence[str]) -> str:
    """One note on the heading's line; several as a list below it."""
    cleaned = [" ".join(n.split()) for n in notes if n and n.strip()]
    if len(cleaned) == 1:
        return f" {cleaned[0]}"
    return "".join(f"\n- {n}" for n in cleaned)
