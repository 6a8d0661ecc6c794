from tests.support.factories import accept, make_world


def test_world_builds_and_accept_works(db):
    w = make_world(db)
    result = accept(db, w.mechanic, w.request)
    assert result["status"] == "accepted"
    assert db.scalar("select status from public.sessions where id = %s", (w.session,)) == "waiting"
