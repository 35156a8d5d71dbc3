rule corpus:
    output:
        directory(CORPUS),
    log:
        STUDY / "logs" / "corpus.log",
    benchmark:
        STUDY / "benchmarks" / "corpus.tsv"
    conda:
        "../../envs/data.yaml"
    script:
        "../../scripts/corpus.py"


rule curate:
    input:
        CORPUS,
    output:
        directory(CURATED),
    log:
        STUDY / "logs" / "curate.log",
    benchmark:
        STUDY / "benchmarks" / "curate.tsv"
    conda:
        "../../envs/data.yaml"
    script:
        "../../scripts/curate.py"


rule tokenize:
    input:
        CURATED,
    output:
        directory(TOKENS),
    log:
        STUDY / "logs" / "tokenize.log",
    benchmark:
        STUDY / "benchmarks" / "tokenize.tsv"
    conda:
        "../../envs/data.yaml"
    script:
        "../../scripts/tokenize.py"
