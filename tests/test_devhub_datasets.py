"""Dataset repos on the local Hub, written by huggingface_hub and read by `datasets.load_dataset` over HTTP."""

from __future__ import annotations

import io

import pytest
from huggingface_hub import CommitOperationAdd, HfApi
from huggingface_hub.errors import RepositoryNotFoundError

from conftest import READ_TOKEN


def parquet_bytes(rows: dict) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    buffer = io.BytesIO()
    pq.write_table(pa.table(rows), buffer)
    return buffer.getvalue()


@pytest.fixture()
def dataset_repo(api, request):
    repo_id = f"hubforge/ds-{request.node.name.replace('[', '-').replace(']', '')}"[:96]
    api.create_repo(repo_id, repo_type="dataset")
    yield repo_id
    api.delete_repo(repo_id, repo_type="dataset")


def test_dataset_repo_is_listed_and_separate_from_models(api, dataset_repo):
    info = api.create_commit(dataset_repo, [CommitOperationAdd("data/train.jsonl", b'{"text": "a"}\n')],
                             commit_message="add", repo_type="dataset")
    ds = HfApi(token=READ_TOKEN).dataset_info(dataset_repo, revision=info.oid)
    assert ds.sha == info.oid and "data/train.jsonl" in {s.rfilename for s in ds.siblings}
    assert {f.path for f in api.list_repo_tree(dataset_repo, repo_type="dataset", recursive=True)} >= {
        "data", "data/train.jsonl"}
    paths = api.get_paths_info(dataset_repo, ["data/train.jsonl"], repo_type="dataset")
    assert [p.path for p in paths] == ["data/train.jsonl"]
    with pytest.raises(RepositoryNotFoundError):
        api.model_info(dataset_repo)


def test_load_dataset_reads_parquet_and_csv_splits(api, dataset_repo, tmp_path):
    import datasets

    train = parquet_bytes({"text": ["hello", "world", "again"], "label": [0, 1, 0]})
    test = parquet_bytes({"text": ["bye"], "label": [1]})
    info = api.create_commit(dataset_repo, [CommitOperationAdd("data/train-00000.parquet", train),
                                            CommitOperationAdd("data/test-00000.parquet", test),
                                            CommitOperationAdd("csv/train.csv", b"text,label\nx,1\ny,0\n"),
                                            CommitOperationAdd("csv/test.csv", b"text,label\nz,1\n")],
                             commit_message="data", repo_type="dataset")
    tree = {f.path: f for f in api.list_repo_tree(dataset_repo, "data", repo_type="dataset")}
    assert tree["data/train-00000.parquet"].lfs is not None

    loaded = datasets.load_dataset(dataset_repo, revision=info.oid, cache_dir=str(tmp_path / "cache"))
    assert loaded["train"]["text"] == ["hello", "world", "again"] and loaded["test"]["label"] == [1]

    csv = datasets.load_dataset(dataset_repo, data_dir="csv", revision=info.oid, token=READ_TOKEN,
                                cache_dir=str(tmp_path / "cache-csv"))
    assert csv["train"]["text"] == ["x", "y"] and csv["test"]["text"] == ["z"]
