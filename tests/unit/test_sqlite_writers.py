"""SQLite writers of every process take turns on `<database>.writer`: a write waits while another
process holds that lock and goes ahead the moment it is let go, instead of SQLite's sleeping retries."""
import fcntl
import os
import threading
import time

from sqlalchemy import text

from app.db import Database


def test_a_write_waits_for_the_writer_lock_of_another_process_and_reads_do_not(database_url):
    db = Database(database_url)
    path = database_url[len("sqlite:///"):] + ".writer"
    other = os.open(path, os.O_RDWR | os.O_CREAT)  # another open file description: as another process has
    fcntl.flock(other, fcntl.LOCK_EX)
    done = threading.Event()

    def write() -> None:
        with db.write() as connection:
            connection.execute(text("CREATE TABLE taking_turns (n INTEGER)"))
        done.set()

    writer = threading.Thread(target=write)
    writer.start()
    with db.read() as connection:  # a reader never takes the lock
        assert connection.execute(text("SELECT 1")).scalar_one() == 1
    assert not done.wait(0.3)  # the write is held back while the other holds the lock...
    released = time.monotonic()
    os.close(other)
    assert done.wait(5)  # ...and goes ahead once it is let go
    writer.join()
    assert time.monotonic() - released < 1
    with db.read() as connection:
        assert connection.execute(text("SELECT count(*) FROM taking_turns")).scalar_one() == 0
    db.dispose()
