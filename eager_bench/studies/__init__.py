"""Studies built on the runner and the tokenizer library: `tokenization` (code quality vs downstream quality) and
`scaling` (cost vs data, catalog, depth and beam width). Each writes a markdown + CSV table and plots."""
