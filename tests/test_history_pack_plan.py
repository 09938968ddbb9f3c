"""How much the background packer rewrites over a long history (issue 19): packing is paid per object
written (libgit2 searches deltas and compresses each one), so the roll-up policy decides its cost.
Counted on the policy itself over 10,000 cell commits' worth of batches, not timed."""

from __future__ import annotations

from txgit import gitpack


def _replay(commits: int, objects_per_commit: int = 8) -> tuple[int, int, int]:
    """Pack a batch every time LOOSE_LIMIT objects are loose, as the background packer does; returns
    (objects written into packs, the most packs at once, packs at the end)."""
    packs: list[int] = []
    written = most = loose = 0
    for _ in range(commits):
        loose += objects_per_commit
        if loose >= gitpack.LOOSE_LIMIT:
            chosen = set(gitpack.gather_plan(packs, loose))
            new = loose + sum(packs[i] for i in chosen)
            packs = [n for i, n in enumerate(packs) if i not in chosen] + [new]
            written += new
            loose = 0
            most = max(most, len(packs))
    return written, most, len(packs)


def test_ten_thousand_commits_rewrite_each_object_about_three_times_in_a_few_packs():
    written, most, _ = _replay(10_000)
    assert written <= 3.5 * 10_000 * 8  # a geometric progression of factor 4 wrote ~8x
    assert most <= 12


def test_packs_stay_few_as_the_history_grows():
    _, most, end = _replay(100_000)
    assert most <= 3 * (gitpack.TIER_WIDTH - 1) + 8  # (TIER_WIDTH - 1) a size class, a log of the size
    assert end <= most


def test_a_full_size_class_is_rolled_up_with_the_new_batch():
    limit = gitpack.LOOSE_LIMIT
    # three packs of one batch each, and a fourth batch: the class is full, all four become one
    assert sorted(gitpack.gather_plan([limit, limit, limit], limit)) == [0, 1, 2]
    # two of them: the new batch is a third, packed alone
    assert gitpack.gather_plan([limit, limit], limit) == []
    # a big pack is not rewritten for a small batch
    assert gitpack.gather_plan([100 * limit], limit) == []
