"""Annotation files -> segments: every format, the video each names resolved to a file of
the source, and every bad input refused naming its field, file and line. The videos are
empty placeholders: parsing labels never decodes them."""
from pathlib import Path

import pytest

from fpar_models.ingest.labels import LabelError, Segment, parse_labels, safe_name, to_seconds

EPIC_100 = """\
narration_id,participant_id,video_id,narration_timestamp,start_timestamp,stop_timestamp,start_frame,stop_frame,narration,verb,verb_class,noun,noun_class,all_nouns,all_noun_classes
P01_01_0,P01,P01_01,00:00:01.089,00:00:00.14,00:00:03.37,8,202,open door,open,3,door,3,['door'],[3]
P01_01_1,P01,P01_01,00:00:02.629,00:00:04.37,00:00:06.17,262,370,turn on light,turn-on,6,light,114,['light'],[114]
P02_03_7,P02,P02_03,00:01:10.500,00:01:10.02,00:01:12.95,4201,4377,put knife on board,put,1,knife,4,"['knife', 'board']","[4, 8]"
"""

EPIC_55 = """\
uid,participant_id,video_id,narration,start_timestamp,stop_timestamp,start_frame,stop_frame,verb,verb_class,noun,noun_class,all_nouns,all_noun_classes
0,P01,P01_01,open door,00:00:00.14,00:00:03.37,8,202,open,3,door,8,['door'],[8]
1,P01,P01_01,take pan:dust,00:00:04.00,00:00:05.50,240,330,take,0,pan:dust,22,['pan:dust'],[22]
"""

EGTEA = """\
# Clip ID (Unique, used only internally); Clip Prefix (Unique); Video Session; Starting Time (ms);  Ending Time (ms); Action Label; Verb Label; Noun Label(s)
1; P05-R01-PastaSalad-583261-586055; P05-R01-PastaSalad; 583261; 586055; Cut tomato; Cut; tomato
2; OP01-R01-PastaSalad-91730-93630; OP01-R01-PastaSalad; 91730; 93630; Take eating_utensil; Take; eating_utensil
3; P05-R01-PastaSalad-1409619-1415214; P05-R01-PastaSalad; 1409619; 1415214; Transfer cucumber,cutting_board,bowl; Transfer; cucumber,cutting_board,bowl
"""

CHARADES = """\
id,subject,scene,quality,relevance,verified,script,objects,descriptions,actions,length
46GP8,HR43,Kitchen,6,7,Yes,A person cooks.,food;stove,A person is cooking.,c092 11.90 21.20;c147 0.00 12.60,24.83
N11GT,0KZ7,Stairs,6,7,Yes,A person walks.,stairs,A person walks.,,18.33
"""


def _videos(source: Path, *names: str) -> Path:
    for name in names:
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        (source / name).write_bytes(b"")
    return source


def _labels(source: Path, text: str, name: str = "labels.csv") -> Path:
    path = source / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_generic_csv_in_seconds_with_users_resolves_stems_and_sanitises_labels(tmp_path):
    src = _videos(tmp_path / "src", "kitchen1.MP4", "day2/cam.mov")
    labels = _labels(src, "video,label,start,end,user\nkitchen1,Open Door,1.5,0:00:04.25,Anna B\n"
                          "day2/cam.mov,take/cup,0,2,bob\nday2/cam,Pour  milk!,3,5.5,bob\n")
    assert parse_labels(src, labels) == [
        Segment("kitchen1.MP4", "open_door", "Anna_B", 1.5, 4.25, "s", 2),
        Segment("day2/cam.mov", "take_cup", "bob", 0.0, 2.0, "s", 3),
        Segment("day2/cam.mov", "pour_milk", "bob", 3.0, 5.5, "s", 4)]


def test_generic_csv_in_frames_and_whole_videos(tmp_path):
    src = _videos(tmp_path / "src", "a.mp4", "b.avi")
    frames = parse_labels(src, _labels(src, "video,label,start_frame,end_frame\na.mp4,stir,30,90\n"), user="Lab 1")
    assert frames == [Segment("a.mp4", "stir", "Lab_1", 30.0, 90.0, "frames", 2)]
    assert to_seconds(frames[0], 30.0) == (1.0, 3.0)
    whole = parse_labels(src, _labels(src, "video,label\nb,wash\n# a comment\n\na,cut\n"), format="generic")
    assert [(s.video, s.label, s.user, s.start, s.end, s.line) for s in whole] == [
        ("b.avi", "wash", "u1", None, None, 2), ("a.mp4", "cut", "u1", None, None, 5)]
    assert to_seconds(whole[0], 25) == (None, None)


def test_epic_100_csv_finds_videos_under_participant_folders_and_labels_by_verb_noun(tmp_path):
    src = _videos(tmp_path / "src", "P01/videos/P01_01.MP4", "P02/P02_03.mp4")
    labels = _labels(src, EPIC_100, "EPIC_100_train.csv")
    action = parse_labels(src, labels)
    assert action == [
        Segment("P01/videos/P01_01.MP4", "open_door", "P01", 0.14, 3.37, "s", 2),
        Segment("P01/videos/P01_01.MP4", "turn-on_light", "P01", 4.37, 6.17, "s", 3),
        Segment("P02/P02_03.mp4", "put_knife", "P02", 70.02, 72.95, "s", 4)]
    assert [s.label for s in parse_labels(src, labels, label_from="verb")] == ["open", "turn-on", "put"]
    assert [s.label for s in parse_labels(src, labels, label_from="noun", format="epic")] == ["door", "light", "knife"]
    by_video = parse_labels(src, labels, user_column="video_id")
    assert [s.user for s in by_video] == ["P01_01", "P01_01", "P02_03"]


def test_epic_55_csv(tmp_path):
    src = _videos(tmp_path / "src", "P01/P01_01.MP4")
    segments = parse_labels(src, _labels(src, EPIC_55, "EPIC_train_action_labels.csv"))
    assert [(s.label, s.start, s.end) for s in segments] == [("open_door", 0.14, 3.37), ("take_pan_dust", 4.0, 5.5)]


def test_egtea_sessions_are_cut_and_trimmed_clips_taken_whole(tmp_path):
    src = _videos(tmp_path / "src", "videos/P05-R01-PastaSalad.mp4",
                  "clips/OP01-R01-PastaSalad-91730-93630-F002199-F002247.mp4")
    labels = _labels(src, EGTEA, "action_labels.csv")
    assert parse_labels(src, labels) == [
        Segment("videos/P05-R01-PastaSalad.mp4", "cut_tomato", "P05", 583.261, 586.055, "s", 2),
        Segment("clips/OP01-R01-PastaSalad-91730-93630-F002199-F002247.mp4", "take_eating_utensil", "OP01",
                None, None, "s", 3),
        Segment("videos/P05-R01-PastaSalad.mp4", "transfer_cucumber_cutting_board_bowl", "P05", 1409.619,
                1415.214, "s", 4)]
    assert [s.label for s in parse_labels(src, labels, label_from="verb")] == ["cut", "take", "transfer"]
    assert [s.label for s in parse_labels(src, labels, label_from="noun", format="egtea")][2] == \
        "cucumber_cutting_board_bowl"


def test_charades_actions_become_one_segment_each(tmp_path):
    src = _videos(tmp_path / "src", "46GP8.mp4", "N11GT.mp4")
    assert parse_labels(src, _labels(src, CHARADES, "Charades_v1_train.csv")) == [
        Segment("46GP8.mp4", "c092", "HR43", 11.9, 21.2, "s", 2),
        Segment("46GP8.mp4", "c147", "HR43", 0.0, 12.6, "s", 2)]


def test_folder_trees_with_and_without_users_ignore_hidden_entries_and_other_files(tmp_path):
    flat = _videos(tmp_path / "flat", "Open Jam/v1.mp4", "Open Jam/v2.MOV", "take_bread/x.mkv", ".cache/y.mp4",
                   "take_bread/.z.mp4", "take_bread/notes.txt")
    assert parse_labels(flat, None) == [
        Segment("Open Jam/v1.mp4", "open_jam", "u1", None, None, "s", 0),
        Segment("Open Jam/v2.MOV", "open_jam", "u1", None, None, "s", 0),
        Segment("take_bread/x.mkv", "take_bread", "u1", None, None, "s", 0)]
    nested = _videos(tmp_path / "nested", "S1/open/a.mp4", "S2/close/b.webm")
    assert [(s.user, s.label) for s in parse_labels(nested, None, format="folders")] == [("S1", "open"), ("S2", "close")]


def test_auto_reads_the_one_csv_at_the_top_of_the_source(tmp_path):
    src = _videos(tmp_path / "src", "a.mp4")
    _labels(src, "video,label\na,cut\n", "mine.csv")
    assert [s.label for s in parse_labels(src, None)] == ["cut"]
    _labels(src, "video,label\na,cut\n", "other.CSV")
    with pytest.raises(LabelError, match="several CSV files") as e:
        parse_labels(src, None)
    assert e.value.field == "labels"


@pytest.mark.parametrize("text, field, match", [
    ("", "labels", r"labels.csv: empty file"),
    ("\n  \n", "labels", r"labels.csv: empty file"),
    ("video,label\n", "labels", r"labels.csv: no labelled segments"),
    ("clip;class\na;cut\n", "format", r"labels.csv: line 1: cannot tell the label format"),
    ("video,label,start\na,cut,1\n", "labels", r"labels.csv: line 1: no column 'end'"),
    ("video,label,start,end\na,cut,1\nb,cut,2,1\n", "labels", r"labels.csv: line 2: a start without an end"),
    ("video,label,start,end\na,cut,2,5\na,cut,3,3\n", "labels", r"labels.csv: line 3: the end \(3\) is not after"),
    ("video,label,start,end\na,cut,-1,2\n", "labels", r"labels.csv: line 2: negative or invalid time"),
    ("video,label,start,end\na,cut,one,2\n", "labels", r"labels.csv: line 2: 'one' is not a time"),
    ("video,label,start_frame,end_frame\na,cut,1.5,9\n", "labels", r"line 2: '1.5' is not a frame number"),
    ("video,label\na,cut\nmissing,cut\n", "labels", r"labels.csv: line 3: video 'missing' not found"),
    ("video,label\ntwin,cut\n", "labels", r"labels.csv: line 2: video 'twin' is ambiguous"),
    ("video,label\n../a.mp4,cut\n", "labels", r"line 2: video '../a.mp4' is not a path inside"),
    ("video,label\na,???\n", "labels", r"labels.csv: line 2: label '\?\?\?' has no letters"),
    ("video,label,user\na,cut,!!\n", "labels", r"labels.csv: line 2: user '!!' has no letters"),
    ("video,label\na,cut,extra\n", "labels", r"labels.csv: line 2: 3 fields, the header has 2"),
    (EGTEA, "labels", r"labels.csv: line 2: neither the clip 'P05-R01-PastaSalad-583261-586055' nor the session"),
    ("id,actions\na,c001 1.0\n", "labels", r"labels.csv: line 2: action 'c001 1.0' is not 'code start end'"),
])
def test_bad_labels_name_the_field_the_file_and_the_line(tmp_path, text, field, match):
    src = _videos(tmp_path / "src", "a.mp4", "twin.mp4", "twin.avi")
    with pytest.raises(LabelError, match=match) as e:
        parse_labels(src, _labels(src, text))
    assert e.value.field == field


@pytest.mark.parametrize("kwargs, field, match", [
    (dict(format="csv"), "format", "unknown label format 'csv'"),
    (dict(format="epic"), "labels", r"labels.csv: line 1: no column 'video_id', 'start_timestamp'"),
    (dict(label_from="object"), "label_from", "label_from must be one of"),
    (dict(label_from="verb"), "label_from", r"labels.csv: line 1: no column 'verb'"),
    (dict(user_column="who"), "user_column", r"labels.csv: line 1: no column 'who'"),
    (dict(user="//"), "user", "user '//' has no letters"),
    (dict(format="folders"), "labels", "the folders format takes no labels file"),
])
def test_bad_options_name_their_field(tmp_path, kwargs, field, match):
    src = _videos(tmp_path / "src", "a.mp4")
    with pytest.raises(LabelError, match=match) as e:
        parse_labels(src, _labels(src, "video,label\na,cut\n"), **kwargs)
    assert e.value.field == field


def test_bad_sources_and_folder_trees(tmp_path):
    cases = [(tmp_path / "nowhere", None, "source", "nowhere: not a folder"),
             (_videos(tmp_path / "empty", "notes.txt"), None, "source", "empty: no videos"),
             (_videos(tmp_path / "mixed", "cut/a.mp4", "S1/stir/b.mp4"), None, "source", r"videos must all be .* \(found cut/a.mp4 and S1/stir/b.mp4\)"),
             (_videos(tmp_path / "top", "a.mp4"), None, "source", r"found a.mp4\)"),
             (_videos(tmp_path / "odd", "???/a.mp4"), None, "source", "label folder '\\?\\?\\?' has no letters"),
             (_videos(tmp_path / "nolabels", "a.mp4"), "missing.csv", "labels", "missing.csv: no such file")]
    for source, labels, field, match in cases:
        with pytest.raises(LabelError, match=match) as e:
            parse_labels(source, source / labels if labels else None)
        assert e.value.field == field, source
    binary = _videos(tmp_path / "bin", "a.mp4")
    (binary / "l.csv").write_bytes(b"\xff\xfe\x00bad")
    with pytest.raises(LabelError, match="l.csv: not UTF-8 text"):
        parse_labels(binary, binary / "l.csv")
    with pytest.raises(LabelError, match="the epic format needs a labels file"):
        parse_labels(binary, None, format="epic")


def test_links_out_of_the_source_are_not_videos_of_it(tmp_path):
    outside = _videos(tmp_path / "outside", "secret.mp4")
    src = _videos(tmp_path / "src", "cut/a.mp4")
    (src / "cut" / "b.mp4").symlink_to(outside / "secret.mp4")
    (src / "cut" / "c.mp4").symlink_to(src / "cut" / "a.mp4")
    assert [s.video for s in parse_labels(src, None)] == ["cut/a.mp4", "cut/c.mp4"]
    for ref in ("cut/b.mp4", "b"):
        with pytest.raises(LabelError, match=f"video '{ref}' not found"):
            parse_labels(src, _labels(src, f"video,label\n{ref},cut\n"))


def test_safe_name():
    assert safe_name("Turn-On light/lamp") == "turn-on_light_lamp"
    assert safe_name("  Café au lait ") == "cafe_au_lait"
    assert safe_name("pan:dust") == "pan_dust"
    assert safe_name("c+d") == "c+d"
    assert safe_name("--x__") == "x"
    assert safe_name("../..") == ""
