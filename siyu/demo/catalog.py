"""Static reference data of the demo brand 朝暮咖啡: stores, channels, products, name pools.

Everything here is fixed; the random parts of the demo (people, orders, messages) live in the
sibling modules and only pick from these tables.
"""

from __future__ import annotations

from dataclasses import dataclass

BRAND = "朝暮咖啡"


@dataclass(frozen=True)
class Store:
    code: str
    name: str
    region: str
    city: str
    lat: float
    lon: float


def _stores() -> tuple[Store, ...]:
    # (city, region, neighbourhood, lat, lon) — real business districts, ~10/8/6 per city.
    places = (
        ("上海", "华东", "静安寺", 31.2234, 121.4456),
        ("上海", "华东", "人民广场", 31.2323, 121.4751),
        ("上海", "华东", "陆家嘴", 31.2397, 121.4998),
        ("上海", "华东", "徐家汇", 31.1955, 121.4368),
        ("上海", "华东", "新天地", 31.2196, 121.4753),
        ("上海", "华东", "五角场", 31.3007, 121.5137),
        ("上海", "华东", "中山公园", 31.2196, 121.4170),
        ("上海", "华东", "虹桥天地", 31.1949, 121.3204),
        ("上海", "华东", "张江", 31.2036, 121.5902),
        ("上海", "华东", "漕河泾", 31.1703, 121.3979),
        ("北京", "华北", "国贸", 39.9087, 116.4605),
        ("北京", "华北", "三里屯", 39.9339, 116.4551),
        ("北京", "华北", "中关村", 39.9836, 116.3164),
        ("北京", "华北", "望京", 39.9961, 116.4701),
        ("北京", "华北", "西单", 39.9088, 116.3745),
        ("北京", "华北", "金融街", 39.9155, 116.3607),
        ("北京", "华北", "五道口", 39.9929, 116.3377),
        ("北京", "华北", "亦庄", 39.7957, 116.5068),
        ("杭州", "华东", "湖滨银泰", 30.2560, 120.1640),
        ("杭州", "华东", "武林广场", 30.2741, 120.1632),
        ("杭州", "华东", "钱江新城", 30.2451, 120.2128),
        ("杭州", "华东", "滨江", 30.2084, 120.2119),
        ("杭州", "华东", "西溪", 30.2810, 120.0750),
        ("杭州", "华东", "未来科技城", 30.2867, 119.9969),
    )
    return tuple(
        Store(f"S{i:03d}", f"{BRAND}·{hood}店", region, city, lat, lon)
        for i, (city, region, hood, lat, lon) in enumerate(places, start=1)
    )


STORES = _stores()
CITIES = ("上海", "北京", "杭州")
STORE_RADIUS_M = 1000
STAFF_PER_STORE = 3
# Store manager and floor guide own the customer relationships; the barista assists.
STORE_PERSONAS = ("sales", "sales", "assistant")
# HQ accounts without a store: the coffee-chain playbook's "welfare officer" and a coffee expert.
HQ_STAFF = (("福利官小暮", "brand"), ("首席咖啡师阿杰", "expert"))


@dataclass(frozen=True)
class Channel:
    code: str
    name: str
    type: str
    pass_rate: float  # connections ÷ reach, how the reach rows are sized
    cac_fen: int  # paid channels: cost per acquired friend; 0 = not priced per friend


CHANNELS = (
    Channel("store_qr", "门店扫码", "offline", 0.60, 0),
    Channel("mp_order_page", "小程序下单页", "mini_program", 0.05, 0),
    Channel("oa_menu", "公众号菜单", "official_account", 0.25, 0),
    Channel("tmall_card", "天猫包裹卡", "package_card", 0.15, 0),
    Channel("jd_card", "京东包裹卡", "package_card", 0.12, 0),
    Channel("douyin_ads", "抖音投放", "paid_ads", 0.015, 4500),
    Channel("moments_ads", "朋友圈广告", "paid_ads", 0.03, 3500),
    Channel("referral", "老带新", "referral", 0.30, 0),
)
(CH_STORE_QR, CH_MP_PAGE, CH_OA_MENU, CH_TMALL, CH_JD, CH_DOUYIN, CH_MOMENTS, CH_REFERRAL) = range(
    len(CHANNELS)
)
PACKAGE_CARD_FEN = 50  # printing one card slipped into each parcel
REFERRAL_REWARD_FEN = 1000  # coupon given to the referrer per invited friend
DOUYIN_FLIGHT_DAYS = 14  # length of a Douyin ad flight and of the rest between flights


@dataclass(frozen=True)
class Product:
    sku: str
    name: str
    category: str
    price_fen: int
    ladder_role: str
    sold: str  # "store" (POS and mini-program), "online" (Tmall / JD) or "both"


PRODUCTS = (
    Product("AM01", "美式", "咖啡", 1500, "traffic", "store"),
    Product("AM02", "冰美式", "咖啡", 1600, "traffic", "store"),
    Product("TE01", "柠檬茶", "茶饮", 1800, "traffic", "store"),
    Product("LT01", "拿铁", "咖啡", 2200, "trust", "store"),
    Product("LT02", "生椰拿铁", "咖啡", 2600, "trust", "store"),
    Product("LT03", "燕麦拿铁", "咖啡", 2600, "trust", "store"),
    Product("LT04", "桂花拿铁", "咖啡", 2800, "trust", "store"),
    Product("FW01", "澳白", "咖啡", 2700, "trust", "store"),
    Product("CP01", "卡布奇诺", "咖啡", 2400, "trust", "store"),
    Product("CB01", "冷萃", "咖啡", 2800, "trust", "store"),
    Product("BK01", "可颂", "烘焙", 1200, "extension", "store"),
    Product("BK02", "肉桂卷", "烘焙", 1600, "extension", "store"),
    Product("SW01", "火腿芝士三明治", "轻食", 2200, "extension", "store"),
    Product("DB03", "挂耳咖啡 3 片尝鲜装", "咖啡零售", 990, "traffic", "online"),
    Product("DB10", "挂耳咖啡 10 片装", "咖啡零售", 5900, "profit", "both"),
    Product("DB30", "挂耳咖啡 30 片装", "咖啡零售", 14900, "profit", "online"),
    Product("BN50", "咖啡豆 500g 意式拼配", "咖啡豆", 12800, "profit", "both"),
    Product("BN25", "咖啡豆 250g 耶加雪菲", "咖啡豆", 9800, "profit", "both"),
    Product("CC06", "冷萃咖啡液 6 支装", "咖啡零售", 6900, "profit", "online"),
    Product("CU01", "随行杯", "周边", 8900, "extension", "online"),
    Product("CU02", "马克杯", "周边", 5900, "extension", "online"),
)
LADDER = ("traffic", "trust", "profit", "extension")
MEMBER_LEVELS = ("银卡", "金卡", "黑金")
MEMBER_LEVEL_POINTS = (500, 2000)  # points needed for 金卡, 黑金

SURNAMES = tuple(
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何林罗高郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘蒋蔡余杜叶程苏魏吕丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万钱严覃武戴莫孔向汤"
)
GIVEN_CHARS = tuple(
    "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华玉萍红文辉力建晶鹏燕斌宇浩凯婷佳琪欣怡子涵梓轩雨萱思远晨浩然一诺语嫣可馨若曦俊杰雅琴嘉怡天佑佳豪诗涵梦瑶"
)
NICK_STEMS = (
    "咖啡续命",
    "拿铁不加糖",
    "早八人",
    "小鹿",
    "橘子汽水",
    "阿杰",
    "Coco",
    "momo",
    "猫系少女",
    "晴天",
    "大白",
    "冰美式爱好者",
    "燕麦奶",
    "周末不加班",
    "Luna",
    "半糖主义",
)
EMAIL_DOMAINS = ("qq.com", "163.com", "126.com", "foxmail.com")
# Phones typed at the till that are not usable numbers (value-level rejects on import).
INVALID_PHONES = (
    "12345",
    "1380013800",
    "138001380001",
    "0571-8888888",
    "110",
    "1234567890",
    "99999999999",
    "13800l38000",
)
PLACEHOLDER_PHONE = "13800000000"  # cashiers type it for walk-ins; carried by many POS records
MOBILE_PREFIXES = (
    130,
    131,
    132,
    133,
    135,
    136,
    137,
    138,
    139,
    150,
    151,
    152,
    155,
    158,
    159,
    166,
    176,
    177,
    180,
    181,
    182,
    185,
    186,
    187,
    188,
    189,
    191,
    199,
)
