"""checkpoint_to_load: the one answer to "which checkpoint will this run
load", rule by rule (the real runs are in test_checkpoint_load_hook.py,
tests/tools/test_work_dir_guards.py and test_kill_during_save.py)."""
import pytest
import torch

from sparseformer_mm.engine import checkpoint_to_load, newest_checkpoint


def _ckpt(path):
    torch.save({'state_dict': {}}, path)
    return str(path)


def test_no_resume_no_load_from(tmp_path):
    _ckpt(tmp_path / 'epoch_1.pth')
    (tmp_path / 'last_checkpoint').write_text(str(tmp_path / 'epoch_1.pth'))
    assert checkpoint_to_load(str(tmp_path)) is None


def test_resume_follows_the_pointer(tmp_path):
    assert checkpoint_to_load(str(tmp_path), resume=True) is None  # none
    _ckpt(tmp_path / 'epoch_1.pth')
    last = _ckpt(tmp_path / 'epoch_2.pth')
    (tmp_path / 'last_checkpoint').write_text(last + '\n')
    assert checkpoint_to_load(str(tmp_path), resume=True) == last
    assert newest_checkpoint(str(tmp_path)) == last


@pytest.mark.parametrize('text', ['', '   \n', 'MISSING'])
def test_a_broken_pointer_says_what_to_type(tmp_path, text):
    newest = _ckpt(tmp_path / 'epoch_10.pth')
    _ckpt(tmp_path / 'epoch_9.pth')
    pointer = tmp_path / 'last_checkpoint'
    missing = str(tmp_path / 'epoch_11.pth')
    pointer.write_text(missing if text == 'MISSING' else text)
    with pytest.raises(FileNotFoundError) as info:
        checkpoint_to_load(str(tmp_path), resume=True)
    msg = str(info.value)
    if text == 'MISSING':
        assert f'{pointer} names {missing}, which does not exist' in msg
    else:
        assert f'the pointer {pointer} is empty' in msg
    assert f'--resume {newest}' in msg  # epoch 10, not 9: by number
    (tmp_path / 'epoch_10.pth').unlink()
    (tmp_path / 'epoch_9.pth').unlink()
    with pytest.raises(FileNotFoundError, match=f'delete {pointer} to start '
                       'from scratch'):
        checkpoint_to_load(str(tmp_path), resume=True)


def test_a_copied_work_dir_resumes_its_own_file(tmp_path):
    old, new = tmp_path / 'old', tmp_path / 'new'
    old.mkdir()
    new.mkdir()
    (new / 'last_checkpoint').write_text(str(old / 'epoch_3.pth'))
    mine = _ckpt(new / 'epoch_3.pth')
    assert checkpoint_to_load(str(new), resume=True) == mine
    _ckpt(old / 'epoch_3.pth')  # even while the original still exists
    assert checkpoint_to_load(str(new), resume=True) == mine
    # a pointer into another folder without a local copy (a checkpoint
    # out_dir elsewhere) is followed as it is
    (new / 'epoch_3.pth').unlink()
    assert checkpoint_to_load(str(new), resume=True) == str(
        old / 'epoch_3.pth')


def test_load_from_and_resume_path(tmp_path):
    path = _ckpt(tmp_path / 'model.pth')
    assert checkpoint_to_load(str(tmp_path), path) == path
    assert checkpoint_to_load(str(tmp_path), path, resume=True) == path
    gone = str(tmp_path / 'gone.pth')
    with pytest.raises(FileNotFoundError,
                       match=f'Cannot load: {gone} \\(load_from\\) does not'):
        checkpoint_to_load(str(tmp_path), gone)
    with pytest.raises(FileNotFoundError, match=r'Cannot resume: .*gone.pth '
                       r'\(--resume PATH / load_from\) does not exist'):
        checkpoint_to_load(str(tmp_path), gone, resume=True)
    url = 'https://example.org/model.pth'  # mmengine downloads it
    assert checkpoint_to_load(str(tmp_path), url) == url
