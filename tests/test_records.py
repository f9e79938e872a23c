"""The typed records as Redis stores them, and the one list of job states as clients see it."""
from core.store.records import ID, TERMINAL, JobRecord, JobStatus, kind_of, model_id_of, new_experiment_id, new_id


def test_a_job_record_reads_back_typed_from_its_hash():
    fields = JobRecord.hash_fields(id="tr_1", kind="train", status=JobStatus.running, created_at=1.5, attempts=2,
                                   cancel=True, request={"frames": 4}, result=None, warnings=["w"])
    assert "result" not in fields and fields["cancel"] == 1 and fields["request"] == '{"frames": 4}'
    raw = {k.encode(): str(v).encode() for k, v in fields.items()}
    job = JobRecord.from_hash(raw, metrics=[{"epoch": 1}])
    assert (job.attempts, job.cancel, job.released, job.request, job.warnings) == (2, True, False, {"frames": 4}, ["w"])
    assert job.status == "running" and not job.ended and not job.awaiting_worker and job.metrics == [{"epoch": 1}]
    assert JobRecord.from_hash({**raw, b"released": b"1"}).awaiting_worker


def test_ids_name_their_kind():
    assert kind_of(new_id("predict")) == "predict" and kind_of(new_id("train")) == "train"
    made = [new_id("train"), new_id("predict"), model_id_of(new_id("train")), new_experiment_id()]
    assert all(ID.fullmatch(i) for i in made) and not ID.search("tr_short m_0123")


def test_the_api_schema_publishes_the_states_and_which_are_terminal():
    from service.main import create_app

    published = create_app().openapi()["components"]["schemas"]["JobStatus"]
    assert published["enum"] == [s.value for s in JobStatus]
    assert set(published["x-terminal"]) == TERMINAL == {"succeeded", "failed", "cancelled"}
