"""The words of the classification: reason templates and error messages in two languages.

Plain dictionaries rather than gettext: a reason is rendered for every elder of a census
export, and a dictionary lookup plus ``str.format_map`` is all that costs. The classification
stores only a template key and its parameters (``reason_codes``), so a reason stored today is
rendered tomorrow in whichever language the reader uses.

Each template ends by citing, in words, the facts it rests on — the "which facts" half of the
policy's demand that every category be explained (DOMAIN.md, registry rule 2).
"""

from __future__ import annotations

LANGUAGES: tuple[str, ...] = ("zh-hans", "en")

# Template key -> text. Fields in braces are filled from the reason's parameters after the
# parameter tables below have translated them. "other.rules" is filled once for each district
# rule that holds, and the pieces are joined with RULE_SEPARATOR.
TEMPLATES: dict[str, dict[str, str]] = {
    "zh-hans": {
        "living_alone.no_spouse_no_children": "无配偶、无在世子女（依据：配偶、子女）",
        "living_alone.no_one_nearby": (
            "子女及其他亲属均不在本街道（乡镇）居住，无配偶或亲属同住，"
            "且日常缺乏陪伴和照顾（依据：子女、配偶、同街道亲属、同住人员、日常陪伴照顾）"
        ),
        "empty_nest.children_left": (
            "子女均已成年并分开居住，且无子女在本街道（乡镇）居住（依据：子女）"
        ),
        "empty_nest.elderly_household": ("纯老年人家庭，同住人员均在60岁以上（依据：同住人员）"),
        "left_behind.children_away": (
            "农村老年人，子女均长期（半年及以上）外出或无赡养能力，"
            "身边没有赡养人（依据：农村、子女）"
        ),
        "impaired.level": "老年人能力评估为{level}（依据：能力评估）",
        "severely_disabled.grade_1_2": "持有残疾人证，{type}残疾{grade}（依据：残疾等级）",
        "severely_disabled.grade_3_intellectual_mental": (
            "持有残疾人证，{type}残疾{grade}（依据：残疾等级、残疾类别）"
        ),
        "fp_special_family.only_child_died": ("独生子女已死亡，且未再生育或收养子女（依据：子女）"),
        "fp_special_family.only_child_disabled": (
            "独生子女残疾等级为{grade}，且未再生育或收养子女（依据：子女）"
        ),
        "other.rules": "符合本区规定“{label}”（依据：{facts}）",
    },
    "en": {
        "living_alone.no_spouse_no_children": (
            "No spouse and no living children (facts: spouse, children)"
        ),
        "living_alone.no_one_nearby": (
            "No child or other relative lives in the same subdistrict, no spouse or relative "
            "lives with the elder, and the elder lacks daily companionship and care "
            "(facts: children, spouse, relatives in the same subdistrict, household, "
            "daily companionship)"
        ),
        "empty_nest.children_left": (
            "All children are adults who have left the household, and none lives in the same "
            "subdistrict (facts: children)"
        ),
        "empty_nest.elderly_household": (
            "Household of elderly people only: everyone living with the elder is 60 or older "
            "(facts: household)"
        ),
        "left_behind.children_away": (
            "Rural elder whose children have all been away for half a year or more or cannot "
            "support the elder, with no supporter nearby (facts: rural, children)"
        ),
        "impaired.level": "Capability assessment level {level} (facts: capability assessment)",
        "severely_disabled.grade_1_2": (
            "Holds a disability certificate: {type} disability, grade {grade} "
            "(facts: disability grade)"
        ),
        "severely_disabled.grade_3_intellectual_mental": (
            "Holds a disability certificate: {type} disability, grade {grade} "
            "(facts: disability grade, disability type)"
        ),
        "fp_special_family.only_child_died": (
            "The only child has died and no other child was born or adopted (facts: children)"
        ),
        "fp_special_family.only_child_disabled": (
            "The only child has a grade {grade} disability and no other child was born or "
            "adopted (facts: children)"
        ),
        "other.rules": "Meets the district rule “{label}” (facts: {facts})",
    },
}

# How several matched district rules, and several facts, are joined.
RULE_SEPARATOR: dict[str, str] = {"zh-hans": "；", "en": "; "}
FACT_SEPARATOR: dict[str, str] = {"zh-hans": "、", "en": ", "}

# Parameter name -> value -> words. A parameter without a table is shown as it is.
PARAM_TABLES: dict[str, dict[str, dict[object, str]]] = {
    "zh-hans": {
        "level": {1: "一级（重度）", 2: "二级（中度）", 3: "三级（轻度）"},
        "grade": {1: "一级", 2: "二级", 3: "三级", 4: "四级"},
        "type": {
            "visual": "视力",
            "hearing": "听力",
            "speech": "言语",
            "physical": "肢体",
            "intellectual": "智力",
            "mental": "精神",
            "multiple": "多重",
        },
    },
    "en": {
        "level": {1: "1 (severe)", 2: "2 (moderate)", 3: "3 (mild)"},
        "grade": {1: "1", 2: "2", 3: "3", 4: "4"},
        "type": {
            "visual": "visual",
            "hearing": "hearing",
            "speech": "speech",
            "physical": "physical",
            "intellectual": "intellectual",
            "mental": "mental",
            "multiple": "multiple",
        },
    },
}

# Names of the facts a district rule may test, as cited in the "other" reason.
FACT_LABELS: dict[str, dict[str, str]] = {
    "zh-hans": {
        "age": "年龄",
        "rural": "农村",
        "extremely_poor": "特困人员",
        "dementia": "失智",
        "daily_companionship": "日常陪伴照顾",
        "relatives_same_subdistrict": "同街道亲属",
        "capability_level": "能力评估等级",
        "disability_grade": "残疾等级",
        "disability_type": "残疾类别",
        "living_children": "在世子女人数",
        "household_size": "同住人数",
        "lives_with_disabled_child": "与重度残疾子女同住",
        "living_alone": "独居",
        "empty_nest": "空巢",
        "left_behind": "留守",
        "impaired": "失能",
        "severely_disabled": "重残",
        "fp_special_family": "计划生育特殊家庭",
    },
    "en": {
        "age": "age",
        "rural": "rural",
        "extremely_poor": "extremely poor",
        "dementia": "dementia",
        "daily_companionship": "daily companionship",
        "relatives_same_subdistrict": "relatives in the same subdistrict",
        "capability_level": "capability level",
        "disability_grade": "disability grade",
        "disability_type": "disability type",
        "living_children": "number of living children",
        "household_size": "household size",
        "lives_with_disabled_child": "lives with a severely disabled child",
        "living_alone": "living alone",
        "empty_nest": "empty nest",
        "left_behind": "left behind",
        "impaired": "impaired",
        "severely_disabled": "severely disabled",
        "fp_special_family": "bereaved/disabled only-child family",
    },
}

# Error messages of ``parse_facts``: key -> (English, Chinese). Fields in braces come from the
# validator.
FACT_ERRORS: dict[str, tuple[str, str]] = {
    "not_object": ("must be a JSON object", "应为 JSON 对象"),
    "not_list": ("must be a list", "应为列表"),
    "not_bool": ("must be true, false or null", "应为 true、false 或 null"),
    "not_date": ("must be a date written YYYY-MM-DD", "应为日期，格式为 YYYY-MM-DD"),
    "required": ("is required", "为必填项"),
    "not_int": ("must be a whole number", "应为整数"),
    "not_number": ("must be a number", "应为数字"),
    "out_of_range": (
        "must be between {low} and {high}",
        "应在 {low} 到 {high} 之间",
    ),
    "not_choice": ("must be one of: {choices}", "应为以下之一：{choices}"),
    "not_text": ("must be a non-empty string", "应为非空字符串"),
    "bad_id": ("must be a string or a whole number", "应为字符串或整数"),
    "after_as_of": ("is later than as_of", "晚于 as_of"),
}
