def test_db_fixture_rolls_back(db):
    assert db.scalar("select count(*) from private.settings") > 0
    u = db.make_user()
    assert db.scalar("select count(*) from auth.users where id = %s", (u,)) == 1
