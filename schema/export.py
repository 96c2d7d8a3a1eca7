"""`python -m schema.export` writes schema.graphql (the SDL clients and partners read)."""

from __future__ import annotations

from pathlib import Path

from schema.build import schema

TARGET = Path(__file__).resolve().parent.parent / "schema.graphql"

if __name__ == "__main__":
    TARGET.write_text(schema.as_str() + "\n")
    print(f"wrote {TARGET}")
