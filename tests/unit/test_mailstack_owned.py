"""What is the formula's own on a host: the marker, the record, no link followed
(``_utils/mailstack_owned.py``), and the execution module refusing, through it,
a plan that would write, chown or remove what is not the formula's."""

import os
import stat

import pytest

from tests.support.loader import REPO, load_salt_module
from tests.support.mailstack_unit import mailu, names_key

owned = load_salt_module(REPO / "_utils" / "mailstack_owned.py", "mailstack_owned_under_test")
MARKED = "# Managed by Salt (mail formula). Local changes are overwritten.\nroot: ops@example.org\n"


@pytest.fixture
def state_dir(tmp_path):
    return str(tmp_path / "state" / "mailstack")


def test_a_file_with_the_marker_is_removed_and_one_without_is_left(tmp_path, state_dir):
    ours, theirs = tmp_path / "ours", tmp_path / "aliases"
    ours.write_text(MARKED)
    theirs.write_text("postmaster: root\n")

    assert owned.remove_if_ours(str(ours), state_dir) == "removed"
    assert owned.remove_if_ours(str(theirs), state_dir).startswith("left")
    assert not ours.exists() and theirs.read_text() == "postmaster: root\n"


def test_a_symbolic_link_to_a_marked_file_is_neither_followed_nor_removed(tmp_path, state_dir):
    target, link = tmp_path / "target", tmp_path / "link"
    target.write_text(MARKED)
    link.symlink_to(target)

    assert not owned.carries_marker(str(link))
    assert owned.remove_if_ours(str(link), state_dir).startswith("left")
    assert link.is_symlink() and target.exists()


def test_a_recorded_file_is_the_formulas_and_forgotten_once_removed(tmp_path, state_dir):
    log = tmp_path / "msmtp.log"
    log.write_text("msmtp's own lines\n")
    owned.record(state_dir, "files", str(log))

    assert owned.remove_if_ours(str(log), state_dir) == "removed"
    assert owned.load(state_dir) == {"files": [], "groups": [], "packages": []}


def test_a_private_file_is_never_readable_by_others_from_its_creation(tmp_path):
    path = tmp_path / "log"
    owned.create_private_file(str(path), os.getuid(), os.getgid(), 0o600)

    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    with pytest.raises(FileExistsError):
        owned.create_private_file(str(path), os.getuid(), os.getgid(), 0o600)


def test_symlink_on_path_finds_a_link_among_the_parents(tmp_path):
    (tmp_path / "real").mkdir()
    (tmp_path / "via").symlink_to(tmp_path / "real")

    assert owned.symlink_on_path(str(tmp_path / "via" / "file")) == str(tmp_path / "via")
    assert owned.symlink_on_path(str(tmp_path / "real" / "file")) is None


def test_foreign_file_problem_names_a_file_the_formula_did_not_write(tmp_path):
    (tmp_path / "msmtprc").write_text("account default\n")
    (tmp_path / "ours").write_text(MARKED)

    assert "was not written by the mail formula" in owned.foreign_file_problem(str(tmp_path / "msmtprc"))
    assert owned.foreign_file_problem(str(tmp_path / "ours")) is None
    assert owned.foreign_file_problem(str(tmp_path / "new")) is None


def test_only_recorded_groups_are_the_formulas_even_with_the_default_name(state_dir):
    assert not owned.owns(state_dir, "groups", "sudo")
    assert not owned.owns(state_dir, "groups", "mail-senders")
    owned.record(state_dir, "groups", "mail-web")
    assert owned.owns(state_dir, "groups", "mail-web")


def test_the_package_record_starts_once_with_what_an_older_formula_installed(state_dir):
    assert not owned.records_packages(state_dir)

    assert owned.adopt_packages(state_dir, ["postfix"]) is True
    assert owned.adopt_packages(state_dir, ["msmtp"]) is False
    assert owned.load(state_dir)["packages"] == ["postfix"]


@pytest.mark.parametrize(
    ("make", "problem"),
    [
        pytest.param(
            lambda p: p.chmod(0o1777), "writable by users other than root", id="world-writable-sticky"
        ),
        pytest.param(
            lambda p: p.chmod(0o775) or os.chown(p, 0, 1),
            "writable by users other than root",
            id="group-writable",
        ),
        pytest.param(lambda p: os.chown(p, 65534, 0), "not owned by root", id="owned-by-nobody"),
    ],
)
def test_a_directory_others_could_change_is_unsafe_for_root_to_write_into(tmp_path, make, problem):
    directory = tmp_path / "dir"
    (directory / "mailstack").mkdir(parents=True)
    make(directory)

    found = owned.unsafe_path_problem("/dir/mailstack", str(tmp_path))

    assert found and problem in found and "/dir" in found


def test_a_root_owned_path_is_safe_and_one_through_a_link_is_not(tmp_path):
    (tmp_path / "usr" / "lib" / "mailstack").mkdir(parents=True)
    (tmp_path / "lib").symlink_to(tmp_path / "usr" / "lib")

    assert owned.unsafe_path_problem("/usr/lib/mailstack", str(tmp_path)) is None
    assert owned.unsafe_path_problem("/usr/lib/missing/deeper", str(tmp_path)) is None
    assert "symbolic link" in owned.unsafe_path_problem("/lib/mailstack", str(tmp_path))


def test_a_program_may_be_a_root_owned_link_to_a_root_owned_file_but_not_into_a_users_directory(tmp_path):
    (tmp_path / "usr" / "bin").mkdir(parents=True)
    (tmp_path / "usr" / "bin" / "msmtp").write_text("")
    (tmp_path / "home" / "eve").mkdir(parents=True)
    os.chown(tmp_path / "home" / "eve", 65534, 65534)
    (tmp_path / "home" / "eve" / "msmtp").write_text("")
    (tmp_path / "usr" / "bin" / "good").symlink_to(tmp_path / "usr" / "bin" / "msmtp")
    (tmp_path / "usr" / "bin" / "evil").symlink_to(tmp_path / "home" / "eve" / "msmtp")

    assert owned.unsafe_path_problem("/usr/bin/good", str(tmp_path), follow_last=True) is None
    assert "not owned by root" in owned.unsafe_path_problem("/usr/bin/evil", str(tmp_path), follow_last=True)


# ----------------------------- the module refuses what is not the formula's ---


@pytest.mark.parametrize("existing", ["file", "symlink"], ids=["someone-elses-file", "symlink-to-passwd"])
def test_msmtp_logfile_that_exists_and_is_not_the_formulas_is_refused(configure, fake_root, existing):
    log_dir = fake_root / "var" / "log"
    log_dir.mkdir(parents=True)
    if existing == "file":
        (log_dir / "mail.log").write_text("rsyslog's\n")
    else:
        (log_dir / "mail.log").symlink_to("/etc/passwd")

    message = configure({"msmtp": {"logfile": "/var/log/mail.log"}, "mailu": mailu()}).validation_error()

    assert names_key(message, "mail:msmtp:logfile"), message
    assert "was not created by the mail formula" in message or "symbolic link" in message


def test_a_group_the_formula_did_not_create_is_refused(configure):
    message = configure({"mailu": mailu(), "lookup": {"msmtp": {"group": "root"}}}).validation_error()

    assert names_key(message, "mail:lookup:msmtp:group"), message
    assert "was not created by the mail formula" in message


def test_a_file_the_formula_would_write_that_it_did_not_write_is_refused(configure, fake_root):
    (fake_root / "etc").mkdir()
    (fake_root / "etc" / "msmtprc").write_text("account default\nhost mine.example\n")

    message = configure({}).validation_error()

    assert names_key(message, "mail:lookup:msmtp:config"), message
    assert "was not written by the mail formula" in message


def test_a_file_the_formula_wrote_may_be_written_again(configure, fake_root):
    (fake_root / "etc").mkdir()
    (fake_root / "etc" / "msmtprc").write_text("# Managed by Salt (mail formula, mode relay).\n")

    assert configure({}).settings()


def test_a_path_through_a_symbolic_link_is_refused(configure, fake_root, tmp_path):
    (tmp_path / "elsewhere").mkdir()
    (fake_root / "etc").mkdir()
    (fake_root / "etc" / "postfix").symlink_to(tmp_path / "elsewhere")

    message = configure({"admin": "ops@example.org"}).validation_error()

    assert names_key(message, "mail:lookup:postfix:config_dir"), message
    assert "symbolic link" in message


def test_clean_is_not_refused_for_a_file_it_will_leave_alone(configure, fake_root):
    (fake_root / "etc").mkdir()
    (fake_root / "etc" / "msmtprc").write_text("account default\n")
    mailstack = configure({})

    assert "mail:lookup:msmtp:config" in mailstack.validation_error()
    assert mailstack.validation_error(writes=False) == ""


OPERATORS_MAIN_CF = "myhostname = theirs.example\nrelayhost = [their-smarthost.example]\n"


@pytest.fixture
def postfix_installed(mailstack):
    """Postfix's commands on the PATH, as after anyone installed it."""
    mailstack.__salt__["cmd.which"] = lambda name: f"/usr/sbin/{name}" if name.startswith("post") else None
    return mailstack


def test_a_postfix_installed_and_configured_before_the_formula_is_refused_naming_take_over(
    configure, postfix_installed, fake_root
):
    (fake_root / "etc" / "postfix").mkdir(parents=True)
    (fake_root / "etc" / "postfix" / "main.cf").write_text(OPERATORS_MAIN_CF)

    message = configure({"container": False}).validation_error()

    assert names_key(message, "mail:take_over:postfix"), message
    assert "was not installed by the mail formula" in message


def test_a_postfix_installed_without_a_main_cf_is_refused_too(configure, postfix_installed):
    message = configure({"container": False}).validation_error()

    assert names_key(message, "mail:take_over:postfix"), message


def test_take_over_hands_an_operators_postfix_to_the_formula(configure, postfix_installed, fake_root):
    (fake_root / "etc" / "postfix").mkdir(parents=True)
    (fake_root / "etc" / "postfix" / "main.cf").write_text(OPERATORS_MAIN_CF)
    mailstack = configure({"container": False, "take_over": {"postfix": True}})

    assert mailstack.validation_error() == ""
    main_cf = mailstack.plan()["layout"]["smtp"]["main-cf"]
    assert main_cf["keep_as"] == "/etc/postfix/main.cf.before-mail-formula"
    assert mailstack.plan()["clean"]["smtp"]["packages"] == ["postfix"]


def test_without_the_local_relay_an_operators_postfix_is_neither_refused_nor_stopped(
    configure, postfix_installed
):
    mailstack = configure({"mailu": mailu(), "container": True})

    assert mailstack.validation_error() == ""
    assert mailstack.plan()["clean"]["smtp"]["service"] == ""


def _dpkg_knows(mailstack, fake_root, installed):
    info = fake_root / "var" / "lib" / "dpkg" / "info"
    info.mkdir(parents=True)
    for name in installed:
        (info / f"{name}.list").write_text("")

    def run_all(cmd, **kwargs):
        names = cmd[cmd.index("--") + 1 :]
        stdout = "".join(f"{name} install ok installed\n" for name in names if name in installed)
        return {"retcode": 0, "stdout": stdout, "stderr": ""}

    mailstack.__salt__["cmd.run_all"] = run_all


def test_a_mode_that_would_remove_a_package_the_formula_did_not_install_is_refused(configure, fake_root):
    mailstack = configure({"container": False})
    _dpkg_knows(mailstack, fake_root, ["msmtp-mta"])

    message = mailstack.validation_error()

    assert names_key(message, "mail:mode"), message
    assert "would remove the package msmtp-mta" in message


def test_a_package_the_formula_installed_may_be_removed_by_a_mode_switch(configure, fake_root):
    state_dir = fake_root / "var" / "lib" / "mailstack"
    state_dir.mkdir(parents=True)
    (state_dir / "owned.json").write_text('{"packages": ["msmtp-mta"]}')
    mailstack = configure({"container": False})
    _dpkg_knows(mailstack, fake_root, ["msmtp-mta"])

    assert mailstack.validation_error() == ""
    assert mailstack.plan()["packages"]["remove"] == ["msmtp-mta"]


def test_a_state_directory_others_can_write_to_is_refused(configure, fake_root):
    (fake_root / "var" / "lib").mkdir(parents=True)
    (fake_root / "var" / "lib").chmod(0o1777)

    message = configure({"health": {"enabled": True}}).validation_error()

    assert names_key(message, "mail:lookup:state_dir"), message
    assert "writable by users other than root" in message


def test_an_msmtp_binary_that_links_into_a_users_directory_is_refused(configure, fake_root):
    (fake_root / "usr" / "bin").mkdir(parents=True)
    (fake_root / "home" / "eve").mkdir(parents=True)
    os.chown(fake_root / "home" / "eve", 65534, 65534)
    (fake_root / "home" / "eve" / "msmtp").write_text("#!/bin/sh\n")
    (fake_root / "usr" / "bin" / "msmtp").symlink_to(fake_root / "home" / "eve" / "msmtp")

    message = configure({}).validation_error()

    assert names_key(message, "mail:lookup:msmtp:binary"), message
    assert "not owned by root" in message


def test_a_ca_file_in_a_directory_others_can_write_to_is_refused(configure, fake_root):
    (fake_root / "srv" / "ca").mkdir(parents=True)
    (fake_root / "srv" / "ca").chmod(0o777)
    (fake_root / "srv" / "ca" / "ca.pem").write_text("")

    message = configure({"mailu": mailu(ca_file="/srv/ca/ca.pem")}).validation_error()

    assert names_key(message, "mail:mailu:ca_file"), message


def test_an_existing_group_becomes_the_formulas_only_with_take_over(configure):
    refused = configure({"mailu": mailu(), "lookup": {"msmtp": {"group": "staff"}}}).validation_error()
    taken = configure(
        {"mailu": mailu(), "lookup": {"msmtp": {"group": "staff"}}, "take_over": {"senders_group": True}}
    ).validation_error()

    assert names_key(refused, "mail:lookup:msmtp:group"), refused
    assert taken == ""


def test_a_user_whose_primary_group_is_the_senders_group_is_refused_since_they_would_read_the_password(
    configure,
):
    # Debian's user "mail" has the group "mail" as its primary group, and no one lists it as a member.
    message = configure(
        {"mailu": mailu(), "lookup": {"msmtp": {"group": "mail"}}, "take_over": {"senders_group": True}}
    ).validation_error()

    assert names_key(message, "mail:senders"), message
    assert "mail has group 'mail' as primary group" in message
