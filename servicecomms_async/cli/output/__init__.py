"""What the command line writes: records (:mod:`.records`: json, jsonl, csv), scan tallies
(:mod:`.tallies`), and, drawn with rich, console tables (:mod:`.console`), the progress bar
(:mod:`.progress`) and the scan summary (:mod:`.summary`). Only the drawing modules import rich."""
