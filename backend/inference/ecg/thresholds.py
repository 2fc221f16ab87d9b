"""Every clinical threshold of the ECG analysis, in one place, each with its source.

Adult resting 12-lead / single-lead values. They decide flags, labels and urgency; they are
not a diagnosis and the result says so.
"""

from __future__ import annotations

# Heart rate. Sinus bradycardia < 60 bpm, sinus tachycardia > 100 bpm, the conventional adult
# limits of the AHA/ACCF/HRS Recommendations for the Standardization and Interpretation of the
# ECG, Part I (Kligfield P et al., Circulation 2007;115:1306-1324), also the labels' cut-offs.
# (LUDB's cardiologists call some 54-59 bpm records plain sinus rhythm: see the rhythm card.)
HR_BRADY_BPM = 60.0
HR_TACHY_BPM = 100.0
# Rates that need prompt care whatever the rhythm (symptomatic brady-/tachyarrhythmia ranges of
# the 2020 AHA ACLS algorithms: bradycardia typically < 50 with symptoms, tachycardia >= 150):
# Panchal AR et al., Circulation 2020;142:S366-S468. We use < 40 and > 150 bpm at rest.
HR_URGENT_LOW_BPM = 40.0
HR_URGENT_HIGH_BPM = 150.0

# Supraventricular tachycardia: narrow (QRS < 120 ms), regular, rate > 150 bpm, no visible
# sinus P waves. 2015 ACC/AHA/HRS Guideline for the Management of Adult Patients With SVT,
# Page RL et al., Circulation 2016;133:e506-e574.
SVT_MIN_HR_BPM = 150.0
SVT_MAX_QRS_MS = 120.0
SVT_MAX_RR_IRREGULARITY = 0.08

# Normal adult ranges: Kligfield 2007 (Part I) and Surawicz B et al., Part III, intraventricular
# conduction disturbances, Circulation 2009;119:e235-e240.
PR_NORMAL_MS = (120.0, 200.0)  # PR > 200 ms: first-degree AV block
QRS_NORMAL_MAX_MS = 110.0  # 110-119 incomplete / nonspecific delay; >= 120 complete BBB pattern
QRS_WIDE_MS = 120.0
# QTc: prolonged >= 450 ms (men), >= 460 ms (women); short <= 390 ms. Rautaharju PM et al.,
# AHA/ACCF/HRS Recommendations Part IV (ST segment, T and U waves, QT interval),
# Circulation 2009;119:e241-e250. Without a sex we use the women's (higher) limit and call the
# range between the two borderline.
# The QTc these limits and the flags judge is Fridericia's (QT / RR^(1/3)); Bazett's (QT /
# RR^(1/2)) is reported beside it. The same statement recommends against Bazett's formula, which
# over-corrects at fast rates, and asks reports to name the formula used; Fridericia's and
# Framingham's removed the rate best in Vandenberk B et al., "Which QT correction formulae to use
# for QT monitoring?", J Am Heart Assoc 2016;5:e003264. Of the 21 twelve-lead records here at
# 100-150 bpm, Bazett's put all at >= 460 ms and 15 over 500 ms (an urgent result), Fridericia's 8
# and 4. The QT itself is not the cause: on LUDB, whose cardiologists marked every wave, their QT
# gives Bazett's QTc >= 460 ms in 41 % of records, ours in 42 %.
QTC_FORMULA = "fridericia"
QTC_UPPER_MS = {"M": 450.0, "F": 460.0}
QTC_UPPER_UNKNOWN_SEX_MS = 460.0
QTC_SHORT_MS = 390.0
# QTc > 500 ms: markedly raised risk of torsade de pointes. Drew BJ et al., AHA/ACCF scientific
# statement "Prevention of torsade de pointes in hospital settings", Circulation
# 2010;121:1047-1060.
QTC_URGENT_MS = 500.0
# A QTc read from a digitised photo or PDF print is urgent only this far over QTC_URGENT_MS and
# at rates up to PHOTO_QTC_URGENT_MAX_HR_BPM; under that it asks for a proper ECG soon. On 176
# rendered tuning sheets (training/ecg/eval_photo_analysis.py --tuning, OpenCV 5.0) the photo's
# QTc ran at most 13.8 ms over the file's at <= 100 bpm (95th percentile 9.6 ms; 17.3 ms before
# the digitiser's pen corners were mended), but up to 38 ms over it at 114-123 bpm, where the T
# wave runs into the next P wave.
PHOTO_QTC_URGENT_MARGIN_MS = 20.0
PHOTO_QTC_URGENT_MAX_HR_BPM = 100.0

# Rhythm evidence from the signal (explanation and agreement with the classifier).
# Normalised RMSSD (RMSSD of successive RR differences / mean RR) > 0.1 marks irregular RR in
# AF detectors: Dash S et al., "Automatic real time detection of atrial fibrillation",
# Ann Biomed Eng 2009;37:1701-1709. Below 0.06 we call the rhythm regular (sinus arrhythmia
# changes RR slowly, so successive differences stay small).
RR_IRREGULAR = 0.10
RR_REGULAR = 0.06
# P waves counted "present" when found before at least half of the beats; AF shows none
# (fibrillatory waves instead): January CT et al., 2014 AHA/ACC/HRS AF guideline,
# Circulation 2014;130:e199-e267.
P_PRESENT_FRACTION = 0.5
P_ABSENT_FRACTION = 0.3

# Sinus rhythm is defined by the rhythm, not the QRS shape: a P wave before every QRS and a
# regular rate (Kligfield 2007, Part I). The single-lead CNN calls sinus beats with bundle
# branch block or other odd QRS shapes "other"; with P waves before >= 80 % of beats and regular
# RR the rhythm is reported as sinus and the QRS finding separately. The same holds for a sinus
# rhythm broken by a few premature beats (P waves before >= 80 % of beats and DOMINANT_RR_SHARE
# of the intervals at the usual one): cardiologists name the rhythm sinus and the extrasystoles
# as a separate finding (LUDB, PTB-XL, Ningbo), while CinC 2017's annotators, whose labels the
# CNN learnt, filed such strips under "other". The P waves are counted over the beats that are
# not early ones (rhythm.early_beat_indices): a ventricular premature beat has no P wave, and
# three of them in ten beats would otherwise keep a sinus rhythm under 80 %.
SINUS_P_FRACTION = 0.8
# The pause after a premature beat: the early and the late interval together span about two
# usual intervals (full compensatory pause after a ventricular premature beat, less after an
# atrial one), and the early one is rarely under half of one, so the late one stays within 1.5
# usual intervals. A longer one is a pause of its own (a dropped beat in second-degree AV block,
# a sinus pause), which needs a doctor's reading: the rhythm then stays "other".
MAX_PAUSE_RR_RATIO = 1.5

# A premature (early) beat and the pause after it: an interval at most 85 % of the usual (median)
# one, then one at least 10 % longer than usual, the two together spanning about two usual
# intervals (1.7-2.3): the full compensatory pause after a ventricular premature beat spans
# exactly two, the pause after an atrial one a little less as the sinus node is reset. This
# short-then-long signature is what tells an early beat from sinus arrhythmia (gradual changes)
# and from a falsely detected extra beat (a T wave counted as a beat splits one usual interval
# into two that add up to one). Early beats are counted only when at least 80 % of the other
# intervals are within 10 % of the usual one (an otherwise regular rhythm). On the held-out CinC
# 2017 test strips the signature is found in 4 % of normal ones, 30 % of "other" (which holds
# sinus rhythms with premature beats) and 3 % of AF (training/ecg/eval_rhythm_12lead.py).
# The RR stage's rr_short_long_pairs feature uses the same two ratios as literals of its own: they
# define an input of trained weights and must not move with these.
PREMATURE_RR_RATIO = 0.85
PAUSE_RR_RATIO = 1.1
PREMATURE_PAIR_SPAN = (1.7, 2.3)
UNDERLYING_REGULAR_SHARE = 0.8
# Bigeminy, every other beat early: the intervals alternate short / long throughout ("regularly
# irregular", unlike AF's irregularly irregular ones), so there is no usual interval to measure
# the early ones against. Found when over at least BIGEMINY_MIN_PAIRS pairs every short interval
# is at most PREMATURE_RR_RATIO of the long ones beside it and UNDERLYING_REGULAR_SHARE of the
# long ones are within 10 % of their median (a fixed coupling keeps them alike). On the held-out
# CinC 2017 test strips it is found in 1.3 % of "other" ones and in none of the normal, AF or
# noisy ones (training/ecg/eval_rhythm_12lead.py).
BIGEMINY_MIN_PAIRS = 4
# Early beats as frequent as one in five beats or more (bigeminy 50 %, trigeminy 33 %,
# quadrigeminy 25 %) ask for a doctor within days, not at the next visit: a burden above about
# 10 % of beats, in a 24-hour recording, is where premature ventricular beats can weaken the heart
# over years and where guidelines advise an evaluation (Al-Khatib SM et al., 2017 AHA/ACC/HRS
# guideline for patients with ventricular arrhythmias, Circulation 2018;138:e272-e391). A 10 s
# record is a sample of that day: one in five keeps the call for records clearly above it.
FREQUENT_EARLY_BEAT_SHARE = 0.2

# Sinus tachycardia the CNN calls "other" (it learnt fast rates from CinC 2017's "other" strips): a
# sinus rhythm is P waves before the beats at a regular rate (Kligfield 2007, Part I). Over 100 bpm
# the P wave runs into the preceding T wave and the delineator finds it before fewer beats (it also
# reads such a record slowed down, delineate.SLOWED_RATE_BPM, which finds more but not all of
# them), and premature beats (common at these rates) break the successive-difference regularity
# without changing the dominant rhythm. So between 100 and 150 bpm (above, SVT is considered) P
# waves before at least half of the beats (P_PRESENT_FRACTION) and at least 70 % of RR intervals
# within 10 % of the median RR make it sinus tachycardia. The 70 % is this project's choice (AF
# keeps well under it: CinC 2017 AF strips 0.50 on average, rr_features.py). The same share lets
# the explanation speak of a regular rhythm with early beats instead of an irregularly irregular
# one, and keeps such beats from contradicting a sinus label.
DOMINANT_RR_SHARE = 0.7

# The classifier's own confidence below which the result is called uncertain.
MIN_CONFIDENCE = 0.5
