"""redis-py side of the interop test: push a task in the original system's JSON shape and read
back the output record our worker and collector produce, checking the original field names.

usage: python3 original_roundtrip.py PORT
"""
import json
import sys
import time
import uuid

import redis

ORIGINAL_OUTPUT_FIELDS = {
    "task_id", "task_application", "task_gen_timestamp", "task_emit_timestamp", "task_emit_time",
    "task_work_timestamp", "task_work_time", "task_deadline", "task_collect_timestamp",
    "task_collect_time", "task_completion_time", "task_QoS", "task_result_data", "task_output_size",
}


def main() -> int:
    r = redis.Redis(host="127.0.0.1", port=int(sys.argv[1]), decode_responses=True, socket_timeout=15)
    start = float(r.get("program_start_time") or time.time())
    now = time.time() - start
    task_id = str(uuid.uuid4())
    task = {
        "task_id": task_id,
        "task_gen_timestamp": now,
        "task_application": "image_processing",
        "task_priority": "normal",
        "task_data_size": 1024,
        "task_processing_time_simulated": 0.05,
        "task_expected_duration": 0.05,
        "task_deadline": 5.0,
        "task_emit_timestamp": now,
        "task_emit_time": 0.0,
    }
    # The original emitter's enqueue: LPUSH + INCR in one transaction (pipelines are MULTI/EXEC).
    pipe = r.pipeline()
    pipe.lpush("worker_queue", json.dumps(task))
    pipe.incr("worker_queue:enqueued_total")
    pushed, counted = pipe.execute()
    assert pushed >= 1 and counted >= 1, (pushed, counted)
    popped = r.brpop(["output_queue"], timeout=10)
    assert popped is not None, "no output record within 10 s"
    record = json.loads(popped[1])
    missing = ORIGINAL_OUTPUT_FIELDS - record.keys()
    assert not missing, f"output record lacks original fields: {sorted(missing)}"
    assert record["task_id"] == task_id
    assert isinstance(record["task_QoS"], bool)
    assert abs(record["task_completion_time"] - (record["task_collect_timestamp"] - record["task_gen_timestamp"])) < 1e-6
    assert record["task_QoS"] == (record["task_deadline"] >= record["task_completion_time"])
    assert int(r.get("collector:tasks_total")) == 1
    print("ok", record["task_id"], "QoS", record["task_QoS"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
