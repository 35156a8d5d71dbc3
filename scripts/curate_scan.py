from isoflop.workflow import logged

with logged(snakemake.log[0]):
    from isoflop.curate.stage import scan_shard

    out = snakemake.output
    scan_shard(snakemake.input[0], snakemake.params.curate, documents_out=out.documents, ledger_out=out.ledger,
               hashes_out=out.hashes, signatures_out=out.signatures)
