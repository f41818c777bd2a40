"""A document filter for `cram prepare`: keep a document when enough of it is words, dropping
what is mostly code, numbers, tables or symbols, and fragments too short to teach context.
A simple quality heuristic in the spirit of the Gopher rules (Rae et al. 2021, which keep a
document when 80% of its words hold a letter), measured on characters: the cramming recipe's
own trash filter judges tokens per character instead, and still runs after this one.

    cram prepare --source demo --out data/demo-filtered --vocab-size 8192 \
        --plugin examples/plugins/document_filter.py --plugin-option min_alpha=0.7

Options: `min_alpha` (default 0.6), the least share of letters among the document's
non-space characters; `min_words` (default 20), the least number of words (runs of non-space
characters). The hook sees each document cleaned: ASCII, lowercase, whitespace collapsed.
"""

CRAM_PLUGIN_API = 1


def keep_document(text, options):
    min_alpha, min_words = float(options.get("min_alpha", 0.6)), int(options.get("min_words", 20))
    words = text.split()
    if len(words) < min_words:
        return False
    chars = sum(map(len, words))
    letters = sum(map(str.isalpha, text))
    return chars > 0 and letters >= min_alpha * chars
