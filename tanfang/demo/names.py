"""Made-up Chinese names of people and places for the synthetic demo city.

Every name here is generated from lists of common surnames, given-name characters and
place-name syllables; none is copied from a register of people. A generated person's name may
of course be shared by real people (names in China are widely shared), but together with the
synthetic ID numbers and the reserved phone blocks no record describes a real person.
"""

from __future__ import annotations

import random


def _words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


def _weighted(text: str) -> tuple[tuple[str, float], ...]:
    """``"王80 李74"`` → ((王, 80.0), (李, 74.0))."""
    return tuple((item[0], float(item[1:])) for item in text.split())


# The commonest surnames with their approximate share (per mille) among northern Chinese
# people; the long tail is cut.
SURNAMES: tuple[tuple[str, float], ...] = _weighted(
    "王80 李74 张72 刘60 赵30 杨30 陈28 马20 孙20 高16 郭14 于12 徐12 周12 吴11 朱10 胡10 "
    "田9 董9 吕8 宋8 韩8 白8 崔7 冯7 曹7 何7 郑7 黄7 石6 许6 魏6 常6 齐5 尹5 孟5 姜5 唐5 "
    "梁5 贾5 谢4 袁4 邓4 彭4 苏4 史4 任4 侯4 丁4 杜4 薛4 程4 闫4 段3 潘3 蔡3 卢3 沈3 姚3 "
    "范3 金3 付3 方3 秦3 邱3 武3 郝3 康3 牛3 林3 罗3 肖3 钱2 戴2 严2 贺2 顾2 毛2 邵2 龚2 "
    "万2 陶2 左2 安2 申2 耿2 焦2 葛2 祁2 庞2 边1 佟1 纪1"
)

# Given names of people born 1925–1966: (first character, second character) pools, whole
# names, and one-character names.
_ELDER_MALE_FIRST = "建国志德文永玉长振宝福树春金世明庆洪学广家立连万俊景兆德全荣凤清文"
_ELDER_MALE_SECOND = "国华民林明山生忠才祥武军强成兴海义荣贵田和东平江元增奎顺福昌禄泉发春友仁"
_ELDER_MALE_WHOLE = _words(
    "建国 建华 国强 志刚 德明 振华 玉明 宝山 福生 长林 树森 永强 春生 国庆 文斌 志明 金山 "
    "庆丰 学文 家驹 立新 德福"
)
_ELDER_MALE_SINGLE = "明强军勇斌刚林亮忠武伟义"
_ELDER_FEMALE_FIRST = "秀桂玉淑凤素丽金美翠春月惠慧亚彩巧瑞宝爱雪兰"
_ELDER_FEMALE_SECOND = "兰英珍芳荣琴云华梅霞芝清贞娥香莲凤敏君萍花菊玲娟"
_ELDER_FEMALE_WHOLE = _words(
    "秀兰 桂英 秀英 玉兰 淑珍 凤英 桂兰 秀珍 玉珍 淑英 丽华 凤兰 秀芳 淑兰 素珍 玉梅 桂芳 "
    "秀荣 桂珍 凤琴 秀云 玉华"
)
_ELDER_FEMALE_SINGLE = "敏静英兰芳华萍琴霞珍"
# Names that mark the years they were given in.
_ERA_NAMES: tuple[tuple[int, int, str, tuple[str, ...]], ...] = (
    (1949, 1951, "male", ("建国", "建华", "国庆")),
    (1950, 1953, "male", ("援朝", "抗美", "卫国")),
    (1958, 1959, "male", ("跃进", "超英")),
    (1964, 1966, "male", ("卫东", "向东", "红军")),
    (1964, 1966, "female", ("卫红", "红梅", "向红")),
)

# Given names of their children, born about 1945–2000.
_CHILD_MALE = _words(
    "伟 强 磊 军 勇 杰 涛 明 超 刚 平 辉 鹏 斌 宇 浩 凯 健 建军 志强 海涛 晓东 国华 卫国 "
    "永刚 学军 红兵 立新 海波 建伟 东升 志勇 晓明 建平 文军 俊杰 振宇 海军"
)
_CHILD_FEMALE = _words(
    "芳 娜 敏 静 丽 艳 娟 霞 燕 玲 丽娟 海燕 红梅 春梅 雪梅 晓燕 丽华 晓红 建英 玉梅 美玲 "
    "晓丽 秀英 桂芝 红霞 丽萍 淑芳 文静 晓霞 春燕 海霞 亚男 慧敏 金凤 彩霞"
)
# Working-age community workers, neighbours and other designated first contacts.
_ADULT_MALE = _CHILD_MALE
_ADULT_FEMALE = _CHILD_FEMALE

_SURNAME_LIST = [s for s, _ in SURNAMES]
_SURNAME_CUMULATIVE: list[float] = []
_total = 0.0
for _s, _w in SURNAMES:
    _total += _w
    _SURNAME_CUMULATIVE.append(_total)


def surname(rng: random.Random) -> str:
    return rng.choices(_SURNAME_LIST, cum_weights=_SURNAME_CUMULATIVE)[0]


def elder_given_name(rng: random.Random, gender: str, birth_year: int) -> str:
    """A given name typical of people born 1925–1966, appropriate to the gender."""
    for low, high, era_gender, names in _ERA_NAMES:
        if low <= birth_year <= high and era_gender == gender and rng.random() < 0.08:
            return rng.choice(names)
    roll = rng.random()
    if gender == "male":
        if roll < 0.3:
            return rng.choice(_ELDER_MALE_WHOLE)
        if roll < 0.38:
            return rng.choice(_ELDER_MALE_SINGLE)
        return _pair(rng, _ELDER_MALE_FIRST, _ELDER_MALE_SECOND)
    if roll < 0.35:
        return rng.choice(_ELDER_FEMALE_WHOLE)
    if roll < 0.42:
        return rng.choice(_ELDER_FEMALE_SINGLE)
    return _pair(rng, _ELDER_FEMALE_FIRST, _ELDER_FEMALE_SECOND)


def _pair(rng: random.Random, first: str, second: str) -> str:
    a = rng.choice(first)
    b = rng.choice(second)
    while b == a:
        b = rng.choice(second)
    return a + b


def child_given_name(rng: random.Random, gender: str) -> str:
    return rng.choice(_CHILD_MALE if gender == "male" else _CHILD_FEMALE)


def adult_name(rng: random.Random) -> str:
    """A working-age person: a community worker, a neighbour, a relative."""
    gender = "female" if rng.random() < 0.6 else "male"
    return surname(rng) + rng.choice(_ADULT_FEMALE if gender == "female" else _ADULT_MALE)


# ----------------------------------------------------------------------------- places

_STREET_STEMS = _words(
    "和平 安定 交道 东华 景山 朝阳 建国 东直 永定 天坛 体育 龙潭 广安 椿树 陶然 月坛 展览 "
    "德胜 新街 什刹 劲松 双井 潘家 麦子 团结 呼家 八里 三里 左家 亮马 望京 小关 安贞 亚运 "
    "大屯 太阳 酒仙 将台 卢沟 长辛 宛平 云岗 东铁 南苑 大红 花园 学院 中关 万寿 羊坊 紫竹 "
    "甘家 八宝 鲁谷 古城 苹果 金顶 广宁 五里 老山 清河 西三 青塔 丽泽 玉泉 北新"
)
_STREET_SUFFIXES = ("里", "门", "桥", "路", "园", "口", "坊", "街", "湖", "营", "寺", "庄", "")
_TOWN_FIRST = _words(
    "东 西 南 北 大 小 上 下 前 后 高 长 石 青 白 黄 红 金 马 杨 柳 桃 杏 枣 梨 沙 龙 凤 云 松"
)
_TOWN_SECOND = _words("河 桥 庄 营 峪 沟 坨 屯 店 台 山 岭 口 湖 泉 坊 窝 堡 寨 甸 城 水 林 园")
_TOWN_TWO = _words(
    "青龙湖 云峰 石门 凤凰岭 柳林 桃园 杏花 松山 白河 黄松峪 青山 银河 马坊 长沟 永乐 安乐 "
    "兴隆 太平 清水 宝山 平安 丰乐 大石河 小营 西集 北台 南河 峪口 沙河 龙泉 雁栖 汤河"
)
_VILLAGE_FIRST = (*_TOWN_FIRST, "辛", "新", "中", "半", "三", "五", "八", "庙", "井", "塔")
_VILLAGE_SECOND = _words(
    "关 辛庄 营 屯 坨 峪 沟 河 台 店 坊 务 庄 各庄 家庄 房 岭 湾 院 窑 堡 洼 坡 楼"
)
_COMMUNITY_MIDDLE = ("东", "西", "南", "北", "中", "")
_COMMUNITY_SUFFIXES = _words("里 街 路 苑 园 小区 北里 西里 南里 东里 家园 新村")
_CHINESE_ORDINALS = "一二三四五六七八九十"


def _unique(rng: random.Random, make: object, taken: set[str]) -> str:
    assert callable(make)
    for _attempt in range(40):
        name = make(rng)
        if name not in taken:
            taken.add(name)
            return name
    base = make(rng)
    for n in range(2, 1000):
        candidate = f"{base[:-1]}{n}{base[-1]}" if base else str(n)
        if candidate not in taken:
            taken.add(candidate)
            return candidate
    raise RuntimeError("ran out of place names")


def street_name(rng: random.Random, taken: set[str]) -> str:
    """``和平里街道``: a stem, a suffix, 街道."""
    return _unique(
        rng, lambda r: r.choice(_STREET_STEMS) + r.choice(_STREET_SUFFIXES) + "街道", taken
    )


def town_name(rng: random.Random, taken: set[str], *, township: bool = False) -> str:
    """``青龙湖镇`` / ``白河乡``."""
    end = "乡" if township else "镇"

    def make(r: random.Random) -> str:
        if r.random() < 0.5:
            return r.choice(_TOWN_TWO) + end
        return r.choice(_TOWN_FIRST) + r.choice(_TOWN_SECOND) + end

    return _unique(rng, make, taken)


def village_name(rng: random.Random, taken: set[str]) -> str:
    """``南关村``, ``王家庄村``, ``李各庄村``."""

    def make(r: random.Random) -> str:
        if r.random() < 0.35:
            return surname(r) + r.choice(("家庄", "各庄", "家营", "家务", "家坟", "家台")) + "村"
        return r.choice(_VILLAGE_FIRST) + r.choice(_VILLAGE_SECOND) + "村"

    return _unique(rng, make, taken)


def residents_community_name(rng: random.Random, taken: set[str], stem: str) -> str:
    """``和平里东社区``, ``安华西里社区``, ``花园路社区``: often built on the street's stem."""

    def make(r: random.Random) -> str:
        base = stem if r.random() < 0.5 else r.choice(_STREET_STEMS)
        suffix = r.choice(_COMMUNITY_SUFFIXES)
        middle = "" if suffix[0] in "东西南北中家新" else r.choice(_COMMUNITY_MIDDLE)
        return base + middle + suffix + "社区"

    return _unique(rng, make, taken)


def grid_name(community_name: str, number: int) -> str:
    """``和平里东社区第一网格``."""
    ordinal = _CHINESE_ORDINALS[number - 1] if 1 <= number <= 10 else str(number)
    return f"{community_name}第{ordinal}网格"


def stem_of(subdistrict_name: str) -> str:
    """The stem of a street's name (``和平里街道`` → ``和平``), for its communities' names."""
    return subdistrict_name[:2]
