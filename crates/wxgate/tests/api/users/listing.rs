//! Reading records back in bulk: pages in byte order of openid with a clamped limit, and one
//! unionid's records found across accounts.

use std::collections::HashSet;

use futures::StreamExt as _;
use rand::seq::SliceRandom as _;
use rand::Rng as _;
use wxgate::users::{LoginProfile, UserDbError, MAX_LIST_LIMIT};

use super::support::*;

pub(super) async fn list_pages_in_byte_order(fx: &Fixture) {
    let db = fx.db().await;
    assert!(db.list(None, 10).await.unwrap().is_empty());

    // Mixed case, digits, '-' and '_' (whose byte order differs from most locales' order),
    // plus one non-ASCII id, in random order.
    let mut rng = rand::thread_rng();
    let alphabet: Vec<char> = "AZaz09_-bB".chars().collect();
    let mut openids: HashSet<String> = ["oé", "o_", "o-", "oA", "oa", "oZ", "oz", "o0"]
        .into_iter()
        .map(str::to_owned)
        .collect();
    while openids.len() < 25 {
        let len = rng.gen_range(2..8);
        let tail: String = (0..len)
            .map(|_| *alphabet.choose(&mut rng).unwrap())
            .collect();
        openids.insert(format!("o{tail}"));
    }
    let mut shuffled: Vec<String> = openids.into_iter().collect();
    shuffled.shuffle(&mut rng);
    for (i, openid) in shuffled.iter().enumerate() {
        if i % 2 == 0 {
            db.record_login(&login(openid), 10).await.unwrap();
        } else {
            assert!(db.record_follow(openid, true, None, 10).await.unwrap());
        }
    }
    let mut expected = shuffled.clone();
    expected.sort();

    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    let mut pages = Vec::new();
    loop {
        let page = db.list(after.as_deref(), 10).await.unwrap();
        pages.push(page.len());
        let Some(last) = page.last() else { break };
        after = Some(last.openid.clone());
        seen.extend(page.into_iter().map(|u| u.openid));
    }
    assert_eq!(pages, vec![10, 10, 5, 0]);
    assert_eq!(seen, expected, "all users, once each, in byte order");

    // `after` need not be an existing openid.
    let after_o = db.list(Some("o0"), 1000).await.unwrap();
    let expected_after: Vec<&String> = expected.iter().filter(|o| o.as_str() > "o0").collect();
    assert_eq!(
        after_o.iter().map(|u| &u.openid).collect::<Vec<_>>(),
        expected_after
    );
}

pub(super) async fn list_limit_is_clamped(fx: &Fixture) {
    let db = fx.db().await;
    let total = usize::try_from(MAX_LIST_LIMIT).unwrap() + 5;
    futures::stream::iter(0..total)
        .map(|i| {
            let db = db.clone();
            async move { db.record_login(&login(&format!("o{i:05}")), 1).await }
        })
        .buffer_unordered(16)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<Vec<()>, UserDbError>>()
        .unwrap();
    let zero = db.list(None, 0).await.unwrap();
    assert_eq!(zero.len(), 1);
    assert_eq!(zero[0].openid, "o00000");
    assert_eq!(db.list(None, u32::MAX).await.unwrap().len(), 1000);
    assert_eq!(db.list(None, 1001).await.unwrap().len(), 1000);
    assert_eq!(db.list(Some("o00999"), u32::MAX).await.unwrap().len(), 5);
}

/// `find_by_unionid`: every account's record of the unionid, by account, whatever handle
/// asks; other unionids and legacy rows left out.
pub(super) async fn one_unionid_across_accounts(fx: &Fixture) {
    let db = fx.db().await;
    let person = |openid: &str, unionid: &str| LoginProfile {
        unionid: Some(unionid.to_owned()),
        ..login(openid)
    };
    db.record_login(&person("legacy-o", "u-1"), 1)
        .await
        .unwrap();
    let shop = db.for_account("shop");
    shop.record_login(&person("o-shop", "u-1"), 10)
        .await
        .unwrap();
    let main = db.for_account("main");
    main.record_follow("o-main", true, None, 20).await.unwrap();
    main.record_login(&person("o-main", "u-1"), 21)
        .await
        .unwrap();
    main.record_login(&person("o-other", "u-2"), 22)
        .await
        .unwrap();
    let found = shop.find_by_unionid("u-1").await.unwrap();
    let accounts: Vec<(&str, &str)> = found
        .iter()
        .map(|r| (r.account.as_str(), r.user.openid.as_str()))
        .collect();
    assert_eq!(accounts, [("main", "o-main"), ("shop", "o-shop")]);
    assert_eq!(found[0].user.subscribed, Some(true));
    assert_eq!(found[1].user.last_login_at, Some(10));
    assert_eq!(db.find_by_unionid("u-1").await.unwrap(), found);
    assert!(db.find_by_unionid("u-3").await.unwrap().is_empty());
}
