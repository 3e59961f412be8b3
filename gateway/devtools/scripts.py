"""What the fake backend says: the reasoning and answer texts, cut into the pieces that become stream chunks.

The wire encoders (``openai_wire``, ``anthropic_wire``) only render a ``Script``; everything that decides *what*
is said — default or planted texts, chunk counts, tool calls — lives here so all three dialects say the same thing.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

DEFAULT_REASONING = (
    "The user wants a short summary of last quarter's support tickets. First, group the tickets by product area: "
    "billing, onboarding and API errors account for most of the volume. Billing tickets rose after the pricing "
    "change, so that is worth calling out. Onboarding tickets dropped once the new setup guide shipped. API errors "
    "cluster around rate limits, which suggests clients retry too aggressively. I should keep the answer to three "
    "bullet points, lead with the biggest change, and avoid guessing at causes I cannot see in the data."
)
DEFAULT_CONTENT = (
    "Here is the summary:\n- Billing tickets rose 18% after the pricing change.\n- Onboarding tickets fell 25% once "
    "the new setup guide shipped.\n- API errors cluster around rate limits; clients retry too aggressively.\n"
    "Let me know if you want a breakdown by week."
)

# Fake but realistic-looking personal data and secrets, planted for the `gateway dev` demo so that masking has
# something to find. All values are documentation/test values (RFC 2606 domain, 555 phone, Visa test card,
# AWS's documented example key).
PLANTED = {
    "email": "jane.doe@example.com",
    "phone": "+1 (415) 555-0132",
    "card": "4111 1111 1111 1111",
    "aws_access_key_id": "AKIA4QZ7XW2JH5RT3KLM",
    "aws_secret": "q8Vb3Xk2LmN9pR4sT7wY1zA5cE6fH0jKuMoPiQrS",
    "customer_id": "CUST-00012345",
}
PLANTED_REASONING = (
    f"The user asks why the refund for customer {PLANTED['customer_id']} failed. The ticket lists the contact as "
    f"Jane Doe, email {PLANTED['email']}, phone {PLANTED['phone']}. The card on file is {PLANTED['card']}, expiry "
    "12/29, so the number itself looks valid and the decline must come from the processor. The on-call notes even "
    f"contain the deploy credentials {PLANTED['aws_access_key_id']} / {PLANTED['aws_secret']}, which must never "
    "appear in a reply. The design doc for Project Falcon says refunds over $500 need a second approval, and this "
    "one was $742.10. So the refund is waiting on approval, it has not failed."
)
PLANTED_CONTENT = (
    f"The refund for {PLANTED['customer_id']} has not failed: it is waiting for a second approval because it is "
    f"over $500. I have left a note for the billing team and will email {PLANTED['email']} once it is approved."
)


@dataclass(frozen=True, slots=True)
class ToolCall:
    name: str
    """Function/tool name, taken from the first tool the request offered."""
    arguments: tuple[str, ...]
    """Pieces of the JSON arguments string, streamed one per chunk."""

    @property
    def arguments_json(self) -> str:
        return "".join(self.arguments)


@dataclass(frozen=True, slots=True)
class Script:
    """One answer: reasoning pieces, then either answer pieces or a tool call."""

    reasoning: tuple[str, ...]
    content: tuple[str, ...]
    """Empty when the answer is a tool call."""
    tool: ToolCall | None = None
    prompt_tokens: int = 12

    @property
    def reasoning_text(self) -> str:
        return "".join(self.reasoning)

    @property
    def content_text(self) -> str:
        return "".join(self.content)

    @property
    def reasoning_tokens(self) -> int:
        return _tokens(self.reasoning_text)

    @property
    def completion_tokens(self) -> int:
        answer = self.tool.arguments_json if self.tool else self.content_text
        return self.reasoning_tokens + _tokens(answer)


def _tokens(text: str) -> int:
    return max(1, len(text) // 4)  # the usual ~4 characters per token rule of thumb


def split_text(text: str, n: int) -> tuple[str, ...]:
    """Cut ``text`` into ``n`` non-empty pieces of near-equal length (fewer if the text is shorter than ``n``).

    Cuts fall anywhere, including inside words and planted secrets: a real tokenizer does the same, and the
    gateway's maskers must cope with a secret split across chunks.
    """
    n = max(1, min(n, len(text)))
    if not text:
        return ()
    bounds = [round(i * len(text) / n) for i in range(n + 1)]
    return tuple(text[bounds[i]:bounds[i + 1]] for i in range(n))


def pick_tool(tools: Any) -> tuple[str, dict] | None:
    """(name, JSON schema) of the first tool in an OpenAI chat, Responses or Anthropic ``tools`` list."""
    if not isinstance(tools, list) or not tools or not isinstance(tools[0], dict):
        return None
    tool = tools[0]
    fn = tool.get("function") if isinstance(tool.get("function"), dict) else tool  # chat nests under "function"
    name = fn.get("name") or "tool"
    schema = fn.get("parameters") or fn.get("input_schema") or {}
    return str(name), schema if isinstance(schema, dict) else {}


def tool_arguments(schema: dict, planted: bool) -> str:
    """A JSON arguments string that fits the tool's schema (by property type), compact like the real APIs."""
    props = schema.get("properties") if isinstance(schema.get("properties"), dict) else {}
    args: dict[str, Any] = {}
    for i, (key, spec) in enumerate(props.items()):
        kind = spec.get("type") if isinstance(spec, dict) else None
        if kind in ("integer", "number"):
            args[key] = 42
        elif kind == "boolean":
            args[key] = True
        elif kind in ("array", "object"):
            args[key] = [] if kind == "array" else {}
        else:
            args[key] = PLANTED["customer_id"] if planted and i == 0 else f"sample {key}"
    if not args:
        args = {"query": PLANTED["customer_id"] if planted else "quarterly ticket summary"}
    return json.dumps(args, separators=(",", ":"))


def make_script(
    chunks: int,
    *,
    reasoning: str | None = None,
    content: str | None = None,
    planted: bool = False,
    tool: tuple[str, dict] | None = None,
) -> Script:
    """Spread ``chunks`` text-carrying chunks over the reasoning (first half) and the answer or tool call."""
    reasoning = reasoning if reasoning is not None else (PLANTED_REASONING if planted else DEFAULT_REASONING)
    content = content if content is not None else (PLANTED_CONTENT if planted else DEFAULT_CONTENT)
    chunks = max(2, chunks)
    n_reasoning = (chunks + 1) // 2
    if tool is not None:
        name, schema = tool
        args = split_text(tool_arguments(schema, planted), chunks - n_reasoning)
        return Script(split_text(reasoning, n_reasoning), (), ToolCall(name, args))
    return Script(split_text(reasoning, n_reasoning), split_text(content, chunks - n_reasoning))
